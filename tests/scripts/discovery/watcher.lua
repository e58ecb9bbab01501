-- `luna watcher.lua <redis port> <ttl ms> <rescan ms>`: prints what it sees
-- of group `service` (`added <name> <value>`, `removed <name>`).
local d = require("luna.discovery").start{
    redis = { port = tonumber(luna.args[1]) }, prefix = "t",
    ttl_ms = tonumber(luna.args[2]), rescan_ms = tonumber(luna.args[3]),
}
d.watch("service", function(name, value) print("added " .. name .. " " .. value) end,
                   function(name) print("removed " .. name) end)
