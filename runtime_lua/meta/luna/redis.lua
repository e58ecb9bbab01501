---@meta luna.redis
-- luna.redis: a Redis client on luna's own loop (nothing blocks).
--   local db = require("luna.redis").connect{ host = "127.0.0.1", port = 6379 }
--   luna.go(function() local value, err = db.call("GET", "key") end)
--   db.send(function(value, err) end, "SET", "key", "value")

---Why a command failed: `redis-unavailable` (not connected: fails at once),
---`connection-lost`, `timeout` (no reply in time), `closed`, or Redis's error reply ("ERR ...").
---@alias luna.RedisError "redis-unavailable"|"connection-lost"|"timeout"|"closed"|string

---The configuration of `redis.connect`.
---@class luna.redis.Config
---@field host? string # default "127.0.0.1"
---@field port? integer # default 6379
---@field password? string # default LUNA_REDIS_PASSWORD
---@field username? string # for AUTH username password
---@field db? integer # SELECTed after each connect
---@field name? string # shown in log lines
---@field mgr? luna.Manager # default: a new one
---@field backoff_min_ms? integer # reconnect backoff (default 100)
---@field backoff_max_ms? integer # (default 2000)
---@field command_timeout_ms? integer # a server that does not answer this long is reconnected (default 5000)
---@field connect_timeout_ms? integer # default 2000
---@field on_ready? fun(client: luna.redis.Client) # connected (again), authenticated, selected
---@field on_down? fun(err: luna.RedisError) # lost the connection
---@field on_message? fun(channel: string, payload: string, pattern: string?) # pub/sub messages

---A Redis client: reconnects with backoff, re-authenticates, re-selects and re-subscribes.
---@class luna.redis.Client
---@field state "down"|"connecting"|"handshake"|"ready"|"closed"
---@field last_error? string # the last problem, nil once connected again
---@field on_message? fun(channel: string, payload: string, pattern: string?) # pub/sub messages
local Client = {}

---Sends a command; `callback(value, err)` gets the reply (at once with
---`redis-unavailable` when not connected).
---@param callback fun(value: any, err: luna.RedisError?)
---@param ... string|number
---@return boolean sent
function Client.send(callback, ...) end

---Sends a command from a coroutine and returns its reply, or nil and the error.
---@async
---@param ... string|number
---@return any value
---@return luna.RedisError? err
function Client.call(...) end

---Subscribes to a channel pattern (messages go to `client.on_message`). The
---client then only subscribes: use another client for commands.
---@param pattern string
function Client.psubscribe(pattern) end

---Closes the connection for good (pending commands fail with `closed`).
function Client.close() end

---The luna.redis module.
---@class luna.redis
local redis = {}

---Connects (and keeps reconnecting) to a Redis server.
---@param config? luna.redis.Config
---@return luna.redis.Client
function redis.connect(config) end

return redis
