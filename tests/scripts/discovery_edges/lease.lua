-- A lease contender whose lease lives longer than its discovery's TTL
-- (tests/discovery_edges.rs).
--   luna lease.lua <id> <redis port> <discovery ttl ms> <lease ttl ms>
-- Prints `started <id>`, `connected <id>` once Redis first answered, then `promoted <id> <ms>` and `demoted <id> <ms> <why>`
-- with luna.get_time_ms() (CLOCK_MONOTONIC: comparable across processes).
local id, port = luna.args[1], tonumber(luna.args[2])
local discovery = require("luna.discovery").start{
    redis = { host = "127.0.0.1", port = port }, prefix = "g", ttl_ms = tonumber(luna.args[3]),
}
lease = discovery.lease("match", id, {
    ttl_ms = tonumber(luna.args[4]),
    on_promote = function() print("promoted " .. id .. " " .. luna.get_time_ms()) end,
    on_demote = function(why) print("demoted " .. id .. " " .. luna.get_time_ms() .. " " .. tostring(why)) end,
})
print("started " .. id)
local connected
connected = luna.interval(20, function()
    if discovery.redis.state == "ready" then
        connected.cancel()
        print("connected " .. id)
    end
end)
