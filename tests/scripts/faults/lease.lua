-- A lease contender of the fault-injection tests (tests/faults.rs).
--   ID=3.1 REDIS_PORT=.. [TTL_MS=600] luna lease.lua
-- Prints `started <id>`, then `promoted <id> <ms>` and `demoted <id> <ms> <why>`
-- with luna.get_time_ms() (CLOCK_MONOTONIC: comparable across processes).
local common = import("common.lua")

local id = common.env("ID", "3.1")
local ttl = common.num("TTL_MS", 600)
local discovery = require("luna.discovery").start{
    redis = { host = "127.0.0.1", port = common.num("REDIS_PORT") }, prefix = "f", ttl_ms = ttl,
}
lease = discovery.lease("match", id, {
    ttl_ms = ttl,
    on_promote = function() print("promoted " .. id .. " " .. luna.get_time_ms()) end,
    on_demote = function(why) print("demoted " .. id .. " " .. luna.get_time_ms() .. " " .. tostring(why)) end,
})
print("started " .. id)
