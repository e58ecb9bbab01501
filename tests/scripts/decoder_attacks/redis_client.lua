-- `luna redis_client.lua <redis port>`: connects with luna.redis (retrying
-- every 50 ms at first), prints `ready`, then `ping <reply>`.
local redis = require("luna.redis")
local db
db = redis.connect{
    port = tonumber(luna.args[1]), backoff_min_ms = 50,
    on_ready = function()
        print("ready")
        luna.go(function() print("ping " .. tostring(db.call("PING"))) end)
    end,
}
