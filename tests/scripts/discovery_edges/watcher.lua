-- Watches kind "service" under prefix "g" (tests/discovery_edges.rs).
--   luna watcher.lua <redis port> <rescan ms> <grace ms>
local port, rescan, grace = tonumber(luna.args[1]), tonumber(luna.args[2]), tonumber(luna.args[3])
local d = require("luna.discovery").start{
    redis = { host = "127.0.0.1", port = port }, prefix = "g", rescan_ms = rescan, grace_ms = grace,
}
d.watch("service", function(name, value) print("added " .. name .. " " .. value) end,
    function(name) print("removed " .. name) end)
print("watching")
