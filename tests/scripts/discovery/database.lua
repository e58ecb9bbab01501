-- `luna database.lua <redis port> <id>`: discovery in database 3 with
-- password `pw`; watches group `service` and registers `id` after 300 ms,
-- after the first scan, so that only a keyspace notification can report it
-- (luna.discovery has no event for "first scan done" to wait for instead).
local d = require("luna.discovery").start{
    redis = { port = tonumber(luna.args[1]), password = "pw", db = 3 }, prefix = "t", ttl_ms = 1000,
    rescan_ms = 600000,
}
d.watch("service", function(name) print("added " .. name) end, function(name) print("removed " .. name) end)
luna.timer(300, function() d.register("service", luna.args[2], "up") end)
