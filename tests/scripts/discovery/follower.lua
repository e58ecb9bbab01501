-- `luna follower.lua <id> <redis port>`: a node with no routers of its own
-- that follows those published in discovery (`router <address or nil>`).
local id, port = luna.args[1], tonumber(luna.args[2])
local d = require("luna.discovery").start{ redis = { port = port }, prefix = "t", ttl_ms = 1000 }
node = require("luna.cluster").start{ id = id, routers = {}, heartbeat_ms = 200,
    on_router_change = function(stream, address) print("router " .. tostring(address)) end }
d.follow_routers(node)
