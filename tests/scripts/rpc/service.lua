-- A service of tests/rpc.rs: `luna service.lua <id> <router>...`, a node
-- whose handlers live in the file HANDLERS (default handlers.lua). Prints
-- `ready <id>` once registered on every router, `reloaded <file>` after a reload.
local cluster = require("luna.cluster")
local routers = {}
for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
_G.node = cluster.start{
    id = luna.args[1], routers = routers, heartbeat_ms = 200,
    handlers = import(os.getenv("HANDLERS") or "handlers.lua"),
}
function on_reload(path) print("reloaded " .. path:match("[^/]+$")) end
local ready = false
luna.interval(20, function()
    if not ready and #node.live_routers() == #routers then ready = true; print("ready " .. node.name) end
end)
