-- The head of every client of tests/cluster_features.rs:
-- `CLIENT_BODY=<file> luna client_head.lua <id> <router>...`; when_ready(fn)
-- runs fn in a coroutine once every router is live. Then the body runs in
-- this file's environment.
local cluster = require("luna.cluster")
local nodes = import("../common/node.lua")
local routers = nodes.routers_from_args()
node = cluster.start{
    id = luna.args[1], routers = routers, heartbeat_ms = 100,
    on_forward_error = function(err, mode, target, ...) print("forward_error " .. err .. " " .. mode .. " " .. tostring(target)) end,
}
function when_ready(fn) nodes.when_live(node, #routers, function() luna.go(fn) end) end
nodes.run_client_body(_ENV)
