-- Helpers shared by the fault-injection scripts of tests/faults.rs.
-- Settings come from environment variables; state changes are printed on
-- stdout as machine-readable lines that the tests wait for.
local cluster = require("luna.cluster")
local nodes = import("../common/node.lua")

-- env(name, default), num(name, default) and list(name), from ../common/env.lua.
local settings = import("../common/env.lua")
env, num, list = settings.env, settings.num, settings.list

--- Starts a luna.cluster node with the routers of ROUTERS, plus those that
--- routers publish in Redis when REDIS_PORT is set (luna.discovery).
function start_node(config)
    config.routers = list("ROUTERS")
    config.heartbeat_ms = num("HEARTBEAT_MS", 100)
    local node = cluster.start(config)
    local redis_port = num("REDIS_PORT")
    if redis_port then
        discovery = require("luna.discovery").start{
            redis = { host = "127.0.0.1", port = redis_port }, prefix = env("PREFIX", "f"),
            ttl_ms = num("TTL_MS", 600), rescan_ms = num("RESCAN_MS", 300),
        }
        discovery.follow_routers(node)
    end
    return node
end

--- Prints `live N` (live routers), `via ADDRESS SEQ` (the router messages go
--- through; SEQ from seq()) and `status ADDRESS STATE` (node.routers_status)
--- whenever they change, and calls on_live() once LIVE routers are live.
function watch(node, on_live, seq)
    local live, via, states, fired = -1, false, {}, false
    local want = num("LIVE", 1)
    luna.interval(10, function()
        local count = #node.live_routers()
        if count ~= live then
            live = count
            print("live " .. count)
        end
        local _, address = node.router()
        if address ~= via then
            via = address
            print("via " .. tostring(address) .. " " .. (seq and seq() or 0))
        end
        if node.routers_status then nodes.print_status_changes(node, states) end
        if not fired and count >= want then
            fired = true
            on_live()
        end
    end)
end

--- With GC_EVERY_MS set, runs a full garbage collection that often.
function collect_garbage_often()
    local every = num("GC_EVERY_MS")
    if every then luna.interval(every, function() collectgarbage() end) end
end
