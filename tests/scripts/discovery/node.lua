-- `luna node.lua <id> <router> <redis port>`: registered in discovery and a
-- cluster node that answers `ping`; node 9.1 also calls 2.1 every 50 ms and
-- prints `answer <n> ticks <t>` (t counts its own 20 ms ticks).
local id, router, port = luna.args[1], luna.args[2], tonumber(luna.args[3])
local d = require("luna.discovery").start{ redis = { port = port }, prefix = "t", ttl_ms = 1000 }
d.register("service", id, "up")
node = require("luna.cluster").start{ id = id, routers = { router }, heartbeat_ms = 200,
    handlers = { ping = function(n) return n end } }
local ticks = 0
luna.interval(20, function() ticks = ticks + 1 end)
if id == "9.1" then
    local n = 0
    luna.interval(50, function()
        luna.go(function()
            n = n + 1
            local answer = node.call_target("2.1", "ping", n)
            if answer then print("answer " .. answer .. " ticks " .. ticks) end
        end)
    end)
end
