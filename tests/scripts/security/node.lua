-- A luna.cluster node of tests/security.rs.
--   ID=2.1 ROUTERS=ip:port,... [SECRET=...] (else LUNA_CLUSTER_SECRET)
--   [TLS_CA, TLS_CERT, TLS_KEY, TLS_SERVER_NAME] [CALL=<id>] luna node.lua
-- Handlers: whoami() -> ID, echo(...) -> .... Any other message prints
-- `message <msg>`. Prints `status <router> <state>` whenever
-- node.routers_status() changes, `router_error <router> <err> <detail>` from
-- on_router_error, `ready <id>` once a router is live, `served <n>` as calls
-- are answered. With CALL=<id>: calls whoami on that id every 100 ms and
-- prints `call ok <answer>` or `call err <error>`.
local common = import("common.lua")
local nodes = import("../common/node.lua")
local cluster = require("luna.cluster")

local id = common.env("ID", "2.1")
served = served or 0

local handlers = {}
function handlers.whoami()
    served = served + 1
    return id
end
function handlers.echo(...) return ... end

node = node or cluster.start{
    id = id,
    routers = common.list("ROUTERS"),
    secret = common.env("SECRET"),
    tls = common.tls_options("TLS"),
    heartbeat_ms = 200,
    backoff_min_ms = 50,
    backoff_max_ms = common.num("BACKOFF_MAX_MS", 400),
    handlers = handlers,
    on_call = function(msg) print("message " .. tostring(msg)) end,
    on_router_error = function(address, err, detail)
        print("router_error " .. address .. " " .. tostring(err) .. " " .. tostring(detail))
    end,
}

local states, ready, shown = {}, false, 0
luna.interval(10, function()
    nodes.print_status_changes(node, states)
    if not ready and #node.live_routers() > 0 then
        ready = true
        print("ready " .. id)
    end
    if served ~= shown then
        shown = served
        print("served " .. served)
    end
end)

local target = common.env("CALL")
if target then
    luna.interval(100, function()
        if #node.live_routers() == 0 then return end
        luna.go(function()
            local answer, err = node.timeout(2000).call_target(target, "whoami")
            if answer then print("call ok " .. tostring(answer)) else print("call err " .. tostring(err)) end
        end)
    end)
end
