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

--- Connects (and keeps reconnecting) to a Redis server; returns the client.
function M.connect(config)
    config = config or {}
    local host, port = config.host or "127.0.0.1", config.port or 6379
    local label = "redis " .. host .. ":" .. port .. (config.name and (" (" .. config.name .. ")") or "")
    local backoff_min, backoff_max = config.backoff_min_ms or 100, config.backoff_max_ms or 2000
    local command_timeout_ms = config.command_timeout_ms or 5000
    local mgr = config.mgr or luna.create_socket_mgr(16)

    -- The password never needs the command line: LUNA_REDIS_PASSWORD is the default.
    local password = config.password or os.getenv("LUNA_REDIS_PASSWORD")
    if password == "" then password = nil end
    local client = { state = "down", last_error = nil, on_message = config.on_message }
    local stream = nil
    local queue, head, tail = {}, 1, 0 -- callbacks of commands awaiting replies, in order
    local sent_at = {}
    local patterns = {} -- pattern -> true, re-subscribed after reconnects
    local subscribed = false
    local backoff = backoff_min
    local closed = false
    local last_problem = nil

    -- Logs a problem when its kind changes (unreachable, authentication...),
    -- not on every retry of the same outage.
    local function problem(text, kind)
        client.last_error = text
        kind = kind or "unreachable"
        if kind ~= last_problem then
            last_problem = kind
            log.error(label .. ": " .. text .. (kind == "unreachable" and "; retrying in the background" or ""))
        end
    end

    local function push(callback)
        tail = tail + 1
        queue[tail], sent_at[tail] = callback, luna.get_time_ms()
    end

    local function pop()
        if head > tail then return nil end
        local callback = queue[head]
        queue[head], sent_at[head] = nil, nil
        head = head + 1
        return callback
    end

    local function fail_pending(err)
        local callback = pop()
        while callback do
            callback(nil, err)
            callback = pop()
        end
    end

    local connect

    local function went_down(err)
        local was = client.state
        client.state = "down"
        stream, subscribed = nil, false
        fail_pending(err)
        if was == "ready" and config.on_down then config.on_down(err) end
        if closed then return end
        local delay = backoff
        backoff = math.min(backoff * 2, backoff_max)
        luna.timer(delay, connect)
    end

    local function drop(reason)
        if stream then
            local s = stream
            stream = nil
            s.close()
        end
        went_down(reason)
    end

    -- Sends without checking the state (the handshake runs before "ready").
    local function raw_send(callback, ...)
        local sent, err = stream.command(...)
        if not sent then return callback(nil, err) end
        push(callback)
    end

    local function handshake()
        client.state = "handshake"
        local failed = false
        local function step(what)
            return function(_, err)
                if err and not failed then
                    failed = true
                    if what == "AUTH" then
                        problem("authentication failed (" .. err .. "): check the password", "auth")
                    else
                        problem(what .. " failed: " .. err, what)
                    end
                    drop("redis-unavailable")
                end
            end
        end
        if password then
            if config.username then
                raw_send(step("AUTH"), "AUTH", config.username, password)
            else
                raw_send(step("AUTH"), "AUTH", password)
            end
        end
        if config.db and config.db ~= 0 then raw_send(step("SELECT"), "SELECT", config.db) end
        for pattern in pairs(patterns) do
            subscribed = true
            raw_send(step("PSUBSCRIBE"), "PSUBSCRIBE", pattern)
        end
        raw_send(function(_, err)
            if failed then return end
            if err then return step("PING")(nil, err) end
            client.state = "ready"
            backoff = backoff_min
            if last_problem then log.info(label .. ": connected again") end
            last_problem, client.last_error = nil, nil
            if config.on_ready then config.on_ready(client) end
        end, "PING")
    end

    function connect()
        if closed or stream then return end
        client.state = "connecting"
        local s, err = mgr.connect_redis(host, port, config.connect_timeout_ms or 2000)
        if not s then
            problem("cannot connect: " .. err)
            return went_down("redis-unavailable")
        end
        stream = s
        s.on_connect = function(result)
            if result ~= "ok" then
                stream = nil
                problem("cannot connect: " .. result)
                return went_down("redis-unavailable")
            end
            handshake()
        end
        s.on_reply = function(value, err)
            if subscribed and type(value) == "table" then
                local kind = value[1]
                if kind == "pmessage" or kind == "message" then
                    local handler = client.on_message
                    if not handler then return end
                    if kind == "pmessage" then return handler(value[3], value[4], value[2]) end
                    return handler(value[2], value[3])
                end
            end
            local callback = pop()
            if callback then
                callback(value, err)
            else
                log.warn(label .. ": a reply arrived for no command")
            end
        end
        s.on_error = function(reason)
            if stream ~= s then return end
            stream = nil
            problem("connection lost (" .. reason .. ")")
            went_down("connection-lost")
        end
    end

    -- A server that stops answering is as good as gone: reconnect.
    local watchdog = luna.interval(math.max(100, command_timeout_ms // 4), function()
        if stream and head <= tail and luna.get_time_ms() - sent_at[head] > command_timeout_ms then
            problem("no reply for " .. command_timeout_ms .. " ms")
            drop("timeout")
        elseif client.state == "ready" and head > tail then
            raw_send(function() end, "PING")
        end
    end)

    --- Sends a command; callback(value, err) gets the reply. False if Redis is unavailable.
    function client.send(callback, ...)
        if client.state ~= "ready" then
            callback(nil, "redis-unavailable")
            return false
        end
        raw_send(callback, ...)
        return true
    end

    --- Sends a command from a coroutine and returns its reply (or nil, err).
    function client.call(...)
        local co, is_main = running()
        if is_main then error("redis call must run inside a coroutine (start one with luna.go)", 2) end
        if client.state ~= "ready" then return nil, "redis-unavailable" end
        local sent, err = stream.command(...)
        if not sent then return nil, err end
        push(function(value, reply_err) luna.resume(co, value, reply_err) end)
        return yield()
    end

    --- Subscribes to a channel pattern; messages go to client.on_message(channel, payload, pattern).
    --- The client then only subscribes: use another client for commands.
    function client.psubscribe(pattern)
        patterns[pattern] = true
        if client.state == "ready" then
            subscribed = true
            raw_send(function(_, err)
                if err then problem("PSUBSCRIBE " .. pattern .. " failed: " .. err) end
            end, "PSUBSCRIBE", pattern)
        end
    end

    --- Closes the connection for good.
    function client.close()
        closed = true
        watchdog.cancel()
        if stream then
            local s = stream
            stream = nil
            s.close()
        end
        client.state = "closed"
        fail_pending("closed")
    end

    connect()
    return client
end

return M
