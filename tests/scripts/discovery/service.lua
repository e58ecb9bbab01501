-- `luna service.lua <id> <redis port> <ttl ms> [lease] [password]`:
-- registers `id`, contends for lease `match` when asked (`promoted <id>`,
-- `demoted <id> <why>`), prints `started <id>` and `tick <n>` every 10 ticks of 50 ms.
local id, port, ttl, lease, password = luna.args[1], tonumber(luna.args[2]), tonumber(luna.args[3]), luna.args[4], luna.args[5]
local d = require("luna.discovery").start{ redis = { port = port, password = password }, prefix = "t", ttl_ms = ttl }
d.register("service", id, "up")
if lease == "lease" then
    d.lease("match", id, {
        on_promote = function() print("promoted " .. id) end,
        on_demote = function(why) print("demoted " .. id .. " " .. why) end,
    })
end
local ticks = 0
luna.interval(50, function()
    ticks = ticks + 1
    if ticks % 10 == 0 then print("tick " .. ticks) end
end)
print("started " .. id)
