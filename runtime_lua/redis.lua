-- luna.redis: a Redis client on luna's own event loop (nothing blocks).
--
--   local redis = require("luna.redis")
--   local db = redis.connect{ host = "127.0.0.1", port = 6379, password = nil, db = 0,   -- password: else LUNA_REDIS_PASSWORD
--                             on_ready = function(db) end, on_down = function(err) end }
--   luna.go(function() local value, err = db.call("GET", "key") end)  -- in a coroutine
--   db.send(function(value, err) end, "SET", "key", "value")          -- callback style
--   db.psubscribe("news.*")   -- with on_message = function(channel, payload, pattern) end
--
-- Replies: strings, integers, nil for a null, tables (with n) for arrays;
-- an error reply comes back as nil, "ERR ...". While Redis is unreachable
-- every command fails at once with "redis-unavailable"; the client
-- reconnects with backoff, re-authenticates, re-selects the database and
-- re-subscribes. Problems are logged once per change, not once per retry.
local luna = luna
local log = luna.log
local running, yield = coroutine.running, coroutine.yield

local M = {}

-- The functions below take `conn`, the private state of one client;
-- `conn.client` is the public object connect returns.

-- Logs a problem when its kind changes (unreachable, authentication...),
-- not on every retry of the same outage.
local function problem(conn, text, kind)
    conn.client.last_error = text
    kind = kind or "unreachable"
    if kind ~= conn.last_problem then
        conn.last_problem = kind
        log.error(conn.label .. ": " .. text .. (kind == "unreachable" and "; retrying in the background" or ""))
    end
end

------------------------------------------------------------------------
-- Commands awaiting replies: callbacks in order, with the time each was sent

-- A command was sent: its callback waits for the reply.
local function push(conn, callback)
    local tail = conn.tail + 1
    conn.tail = tail
    conn.queue[tail], conn.sent_at[tail] = callback, luna.get_time_ms()
end

-- The callback of the oldest command awaiting a reply (nil when none).
local function pop(conn)
    local head = conn.head
    if head > conn.tail then return nil end
    local callback = conn.queue[head]
    conn.queue[head], conn.sent_at[head] = nil, nil
    conn.head = head + 1
    return callback
end

-- Fails every command awaiting a reply with `err`.
local function fail_pending(conn, err)
    local callback = pop(conn)
    while callback do
        callback(nil, err)
        callback = pop(conn)
    end
end

-- Sends without checking the state (the handshake runs before "ready").
local function raw_send(conn, callback, ...)
    local sent, err = conn.stream.command(...)
    if not sent then return callback(nil, err) end
    push(conn, callback)
end

------------------------------------------------------------------------
-- The connection: connect, handshake, replies, going down, reconnecting

local connect

-- The connection is gone: pending commands fail, a reconnect is scheduled.
local function went_down(conn, err)
    local client = conn.client
    local was = client.state
    client.state = "down"
    conn.stream, conn.subscribed = nil, false
    fail_pending(conn, err)
    if was == "ready" and conn.config.on_down then conn.config.on_down(err) end
    if conn.closed then return end
    local delay = conn.backoff
    conn.backoff = math.min(conn.backoff * 2, conn.backoff_max)
    luna.timer(delay, function() connect(conn) end)
end

-- Closes the stream, if any (forgotten first: its on_error is ignored).
local function close_stream(conn)
    local stream = conn.stream
    if not stream then return end
    conn.stream = nil
    stream.close()
end

-- Closes the connection on purpose (a failed handshake, a silent server).
local function drop(conn, reason)
    close_stream(conn)
    went_down(conn, reason)
end

-- A handshake command failed: the attempt is given up and retried later.
local function handshake_failed(conn, attempt, what, err)
    if attempt.failed then return end
    attempt.failed = true
    if what == "AUTH" then
        problem(conn, "authentication failed (" .. err .. "): check the password", "auth")
    else
        problem(conn, what .. " failed: " .. err, what)
    end
    drop(conn, "redis-unavailable")
end

-- Sends one handshake command (`what`) unless the attempt already failed.
local function handshake_send(conn, attempt, what, ...)
    if attempt.failed then return end
    raw_send(conn, function(_, err)
        if err then handshake_failed(conn, attempt, what, err) end
    end, ...)
end

-- The handshake's final PING answered: the client is ready.
local function handshake_done(conn, attempt, err)
    if attempt.failed then return end
    if err then return handshake_failed(conn, attempt, "PING", err) end
    local client = conn.client
    client.state = "ready"
    conn.backoff = conn.backoff_min
    if conn.last_problem then log.info(conn.label .. ": connected again") end
    conn.last_problem, client.last_error = nil, nil
    if conn.config.on_ready then conn.config.on_ready(client) end
end

-- AUTH, SELECT and PSUBSCRIBE again after each connect, then PING.
local function handshake(conn)
    local config = conn.config
    conn.client.state = "handshake"
    local attempt = { failed = false }
    if conn.password then
        if config.username then
            handshake_send(conn, attempt, "AUTH", "AUTH", config.username, conn.password)
        else
            handshake_send(conn, attempt, "AUTH", "AUTH", conn.password)
        end
    end
    if config.db and config.db ~= 0 then handshake_send(conn, attempt, "SELECT", "SELECT", config.db) end
    for pattern in pairs(conn.patterns) do
        if attempt.failed then return end
        conn.subscribed = true
        handshake_send(conn, attempt, "PSUBSCRIBE", "PSUBSCRIBE", pattern)
    end
    if attempt.failed then return end
    raw_send(conn, function(_, err) handshake_done(conn, attempt, err) end, "PING")
end

-- A pub/sub message: to client.on_message(channel, payload[, pattern]);
-- without one, the first dropped message is logged.
local function deliver_message(conn, value)
    local handler = conn.client.on_message
    if not handler then
        if not conn.warned_no_handler then
            conn.warned_no_handler = true
            log.warn(conn.label .. ": a pub/sub message arrived but the client has no on_message: dropped")
        end
        return
    end
    if value[1] == "pmessage" then return handler(value[3], value[4], value[2]) end
    return handler(value[2], value[3])
end

-- A reply: a pub/sub message, else the answer to the oldest command.
local function on_reply(conn, value, err)
    if conn.subscribed and type(value) == "table" and (value[1] == "pmessage" or value[1] == "message") then
        return deliver_message(conn, value)
    end
    local callback = pop(conn)
    if callback then
        callback(value, err)
    else
        log.warn(conn.label .. ": a reply arrived for no command")
    end
end

-- Opens a stream to the server (unless closed or connected already).
function connect(conn)
    if conn.closed or conn.stream then return end
    conn.client.state = "connecting"
    local s, err = conn.mgr.connect_redis(conn.host, conn.port, conn.config.connect_timeout_ms or 2000)
    if not s then
        problem(conn, "cannot connect: " .. err)
        return went_down(conn, "redis-unavailable")
    end
    conn.stream = s
    s.on_connect = function(result)
        if result ~= "ok" then
            conn.stream = nil
            problem(conn, "cannot connect: " .. result)
            return went_down(conn, "redis-unavailable")
        end
        handshake(conn)
    end
    s.on_reply = function(value, reply_err) return on_reply(conn, value, reply_err) end
    s.on_error = function(reason)
        if conn.stream ~= s then return end
        conn.stream = nil
        problem(conn, "connection lost (" .. reason .. ")")
        went_down(conn, "connection-lost")
    end
end

-- The answer to the watchdog's PING: an error while still ready (a server
-- error reply, a send that failed) is reported; an outage reports itself.
local function pinged(conn, _, err)
    if err and conn.client.state == "ready" then problem(conn, "PING failed: " .. tostring(err), "ping") end
end

-- A server that stops answering is as good as gone: reconnect. An idle
-- ready connection is PINGed so that a dead one is found.
local function watchdog_tick(conn)
    local idle = conn.head > conn.tail
    if conn.stream and not idle and luna.get_time_ms() - conn.sent_at[conn.head] > conn.command_timeout_ms then
        problem(conn, "no reply for " .. conn.command_timeout_ms .. " ms")
        drop(conn, "timeout")
    elseif conn.client.state == "ready" and idle then
        raw_send(conn, conn.pinged, "PING")
    end
end

------------------------------------------------------------------------
-- The public client

-- Sends a command from a coroutine and returns its reply (or nil, err).
-- Tail-called by client.call: error level 2 is the script's caller.
local function call(conn, ...)
    local co, is_main = running()
    if is_main then error("redis call must run inside a coroutine (start one with luna.go)", 2) end
    if conn.client.state ~= "ready" then return nil, "redis-unavailable" end
    local sent, err = conn.stream.command(...)
    if not sent then return nil, err end
    push(conn, function(value, reply_err) luna.resume(co, value, reply_err) end)
    return yield()
end

-- Subscribes now when ready; every (re)connect subscribes again.
local function psubscribe(conn, pattern)
    conn.patterns[pattern] = true
    if conn.client.state ~= "ready" then return end -- the handshake subscribes
    conn.subscribed = true
    raw_send(conn, function(_, err)
        if err then problem(conn, "PSUBSCRIBE " .. pattern .. " failed: " .. err) end
    end, "PSUBSCRIBE", pattern)
end

-- Closes for good: no reconnect; pending commands fail with "closed".
local function close(conn)
    conn.closed = true
    conn.watchdog.cancel()
    close_stream(conn)
    conn.client.state = "closed"
    fail_pending(conn, "closed")
end

--- Connects (and keeps reconnecting) to a Redis server; returns the client.
function M.connect(config)
    config = config or {}
    local host, port = config.host or "127.0.0.1", config.port or 6379
    -- The password never needs the command line: LUNA_REDIS_PASSWORD is the default.
    local password = config.password or os.getenv("LUNA_REDIS_PASSWORD")
    if password == "" then password = nil end
    local client = { state = "down", last_error = nil, on_message = config.on_message }
    local backoff_min = config.backoff_min_ms or 100
    local conn = {
        client = client, config = config, host = host, port = port, password = password,
        label = "redis " .. host .. ":" .. port .. (config.name and (" (" .. config.name .. ")") or ""),
        backoff_min = backoff_min, backoff_max = config.backoff_max_ms or 2000, backoff = backoff_min,
        command_timeout_ms = config.command_timeout_ms or 5000,
        mgr = config.mgr or luna.create_socket_mgr(16),
        stream = nil,
        queue = {}, head = 1, tail = 0, sent_at = {}, -- commands awaiting replies, in order
        patterns = {}, -- pattern -> true, re-subscribed after reconnects
        subscribed = false,
        closed = false,
        last_problem = nil,
    }
    function conn.pinged(value, err) return pinged(conn, value, err) end
    conn.watchdog = luna.interval(math.max(100, conn.command_timeout_ms // 4), function() watchdog_tick(conn) end)

    --- Sends a command; callback(value, err) gets the reply. False if Redis is unavailable.
    function client.send(callback, ...)
        if client.state ~= "ready" then
            callback(nil, "redis-unavailable")
            return false
        end
        raw_send(conn, callback, ...)
        return true
    end

    --- Sends a command from a coroutine and returns its reply (or nil, err).
    function client.call(...) return call(conn, ...) end

    --- Subscribes to a channel pattern; messages go to client.on_message(channel, payload, pattern).
    --- The client then only subscribes: use another client for commands.
    function client.psubscribe(pattern) return psubscribe(conn, pattern) end

    --- Closes the connection for good.
    function client.close() return close(conn) end

    connect(conn)
    return client
end

return M
