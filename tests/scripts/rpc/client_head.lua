-- The head of every client of tests/rpc.rs:
-- `CLIENT_BODY=<file> luna client_head.lua <id> <router>...`. Starts the
-- node and offers when_ready(fn) (fn runs in a coroutine once every router
-- is live) and show(...) (values with their number types); then the body
-- runs in this file's environment.
local cluster = require("luna.cluster")
rpc = require("luna.rpc")
local nodes = import("../common/node.lua")
local routers = nodes.routers_from_args()
node = cluster.start{ id = luna.args[1], routers = routers, heartbeat_ms = 200 }
function when_ready(fn) nodes.when_live(node, #routers, function() luna.go(fn) end) end
function show(...)
    local parts = {}
    for i = 1, select("#", ...) do
        local v = select(i, ...)
        parts[i] = type(v) == "number" and (math.type(v) .. ":" .. tostring(v)) or tostring(v)
    end
    return table.concat(parts, " ")
end
nodes.run_client_body(_ENV)
