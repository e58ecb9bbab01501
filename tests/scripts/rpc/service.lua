-- A service of tests/rpc.rs: `luna service.lua <id> <router>...`, a node
-- whose handlers live in the file HANDLERS (tests/rpc.rs gives a copy of
-- handlers.lua in a scratch directory; default: the one here). Prints
-- `ready <id>` once registered on every router, `reloaded <file>` after a reload.
local cluster = require("luna.cluster")
local nodes = import("../common/node.lua")
local routers = nodes.routers_from_args()
_G.node = cluster.start{
    id = luna.args[1], routers = routers, heartbeat_ms = 200,
    handlers = import(os.getenv("HANDLERS") or "handlers.lua"),
}
function on_reload(path) print("reloaded " .. path:match("[^/]+$")) end
nodes.print_ready_when_live(node, #routers)
