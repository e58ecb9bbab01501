-- `luna claim.lua <router> <router>`: service 3.3 claims the master of
-- group 3 once both routers are live, then prints `claimed`.
local cluster = require("luna.cluster")
node = cluster.start{ id = "3.3", routers = { luna.args[1], luna.args[2] }, heartbeat_ms = 200,
    on_call = function(msg, a, b) if msg == "whoami" then node.forward_target(a, "iam", b, node.name) end end }
local t
t = luna.interval(20, function()
    if #node.live_routers() == 2 then t.cancel(); node.claim_master(); print("claimed") end
end)
