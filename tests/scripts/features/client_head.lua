-- The head of every client of tests/cluster_features.rs:
-- `CLIENT_BODY=<file> luna client_head.lua <id> <router>...`; when_ready(fn)
-- runs fn in a coroutine once every router is live. Then the body runs in
-- this file's environment.
local cluster = require("luna.cluster")
local routers = {}
for i = 2, #luna.args do routers[#routers + 1] = luna.args[i] end
node = cluster.start{
    id = luna.args[1], routers = routers, heartbeat_ms = 100,
    on_forward_error = function(err, mode, target, ...) print("forward_error " .. err .. " " .. mode .. " " .. tostring(target)) end,
}
function when_ready(fn)
    local timer
    timer = luna.interval(20, function()
        if #node.live_routers() == #routers then
            timer.cancel()
            luna.go(fn)
        end
    end)
end
assert(loadfile(assert(os.getenv("CLIENT_BODY"), "CLIENT_BODY is not set"), "t", _ENV))()
