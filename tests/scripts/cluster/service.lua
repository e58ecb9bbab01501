-- A service of tests/cluster.rs: `luna service.lua <id> <router>...`. It
-- answers `whoami`, counts `count` messages (`count <tag> <n>`) and echoes
-- `echo` payloads back to the sender. Prints `ready <id>` once registered
-- on every router.
local cluster = require("luna.cluster")
local nodes = import("../common/node.lua")
local routers = nodes.routers_from_args()
counts = {}
node = cluster.start{
    id = luna.args[1],
    routers = routers,
    heartbeat_ms = 200,
    on_call = function(msg, a, b, c)
        if msg == "whoami" then
            node.forward_target(a, "iam", b, node.name)
        elseif msg == "count" then
            counts[a] = (counts[a] or 0) + 1
            print("count " .. a .. " " .. counts[a])
        elseif msg == "echo" then
            node.forward_target(a, "echoed", b, node.name)
        end
    end,
}
nodes.print_ready_when_live(node, #routers)
