-- The head of every client of tests/cluster.rs:
-- `CLIENT_BODY=<file> luna client_head.lua <id> <router>...`. A node that
-- collects replies (and calls the body's on_reply(msg, tag, who, extra)),
-- prints `forward_error ...` lines, and offers when_ready(fn): fn runs once
-- every router is live. Then the body runs in this file's environment.
local cluster = require("luna.cluster")
local nodes = import("../common/node.lua")
local routers = nodes.routers_from_args()
replies = {}
node = cluster.start{
    id = luna.args[1],
    routers = routers,
    heartbeat_ms = 200,
    on_call = function(msg, tag, who, extra)
        replies[#replies + 1] = { msg = msg, tag = tag, who = who, extra = extra }
        if on_reply then on_reply(msg, tag, who, extra) end
    end,
    on_forward_error = function(err, mode, target, ...)
        print("forward_error", err, mode, target, ...)
    end,
}
function when_ready(fn) nodes.when_live(node, #routers, fn) end
nodes.run_client_body(_ENV)
