-- luna.rpc: calls that return the remote handler's results.
--
--   local rpc = require("luna.rpc")
--   rpc.serve(stream, handlers)                 -- handlers[name](...) answers calls
--   luna.go(function()
--       local a, b = rpc.call(stream, "add", 1, 2)       -- results, or nil, err
--       local r = rpc.timeout(500).call(stream, "slow")   -- per-call timeout
--   end)
--   rpc.async(rpc.call, function(sum, err) end, stream, "add", 1, 2)  -- callback style
--
-- Cluster nodes (luna.cluster) call through routers: node.call_target(id, ...),
-- call_master, call_hash, call_random and call_broadcast.
--
-- A call fails with nil and one of: "timeout", "no-route" (the router had
-- nowhere to send it), "connection-lost" (the stream or the callee went
-- away; reported at once, not at the timeout), "remote-error: <message>"
-- (the handler raised an error or does not exist), or the reason the
-- arguments could not be sent.
--
-- Wire: a call is the message ("@call", session, reply_to, method, ...);
-- the answer is ("@ret", session, from_id, ok, ...). reply_to is the
-- caller's service id for routed calls, 0 for a direct stream.
local luna = luna
local log = luna.log
local timer_start, timer_cancel = luna.timer_start, luna.timer_cancel
local running, yield, isyieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
local pack, unpack, select, type, tostring = table.pack, table.unpack, select, type, tostring

local M = {}

--- Milliseconds a call waits for its answer unless told otherwise.
M.default_timeout_ms = 5000

local stats = { calls = 0, completed = 0, timeouts = 0, late_replies = 0, connection_lost = 0, no_route = 0, remote_errors = 0 }
local pending = {} -- session -> call record
local pending_count = 0
local next_session = math.random(1, 0x7fffffff) -- random start: a restarted caller does not reuse recent ids

local function new_session()
    repeat
        next_session = next_session + 1
        if next_session > 0xffffffff then next_session = 1 end
    until pending[next_session] == nil
    return next_session
end

--- Counters: calls, completed, timeouts, late_replies, connection_lost, no_route, remote_errors, pending.
function M.stats()
    local copy = { pending = pending_count }
    for k, v in pairs(stats) do copy[k] = v end
    return copy
end

local function take(session)
    local record = pending[session]
    if record then
        pending[session] = nil
        pending_count = pending_count - 1
        timer_cancel(record.timer)
    end
    return record
end

-- Resumes the caller with (false, err) so that the call returns nil, err.
local function fail(session, err)
    local record = take(session)
    if not record then return end
    if err == "connection-lost" then
        stats.connection_lost = stats.connection_lost + 1
    elseif err == "no-route" then
        stats.no_route = stats.no_route + 1
    end
    luna.resume(record.co, false, err)
end

local function broadcast_done(session, record)
    if not record.expected then return end
    for _, id in ipairs(record.expected) do
        if record.results[id] == nil then return end
    end
    take(session)
    stats.completed = stats.completed + 1
    luna.resume(record.co, true, record.results)
end

local function on_timeout(session)
    local record = pending[session]
    if not record then return end
    stats.timeouts = stats.timeouts + 1
    if record.tracked and record.stream then
        record.stream._cancel(session) -- let the router forget it
    end
    if record.results then
        for _, id in ipairs(record.expected or {}) do
            if record.results[id] == nil then record.results[id] = { ok = false, err = "timeout" } end
        end
        take(session)
        return luna.resume(record.co, true, record.results)
    end
    fail(session, "timeout")
end

local function finish(ok, ...)
    if ok then return ... end
    return nil, ...
end

-- Parks the running coroutine until the answer of `session` arrives.
local function wait(session, record, timeout_ms)
    record.co = running()
    record.timer = timer_start(timeout_ms or M.default_timeout_ms, nil, function() on_timeout(session) end)
    pending[session] = record
    pending_count = pending_count + 1
    stats.calls = stats.calls + 1
    return finish(yield())
end

local function check_coroutine(what)
    local _, is_main = running()
    if is_main or not isyieldable() then
        error(what .. " must run inside a coroutine (start one with luna.go)", 3)
    end
end

local function send_failed(err)
    if err == "closed" then return nil, "connection-lost" end
    return nil, err
end

-- A call on a stream, answered on the same stream.
local function direct_call(timeout_ms, stream, method, ...)
    check_coroutine("rpc.call")
    M.serve(stream)
    local session = new_session()
    local sent, err = stream.call("@call", session, 0, method, ...)
    if not sent then return send_failed(err) end
    return wait(session, { stream = stream, token = stream.token }, timeout_ms)
end

--- A call through a router: `mode` is target, master, random or hash (see luna.cluster).
function M.routed_call(timeout_ms, stream, reply_to, mode, target, key, method, ...)
    check_coroutine("a routed call")
    local session = new_session()
    local sent, err = stream._forward(mode, target, key, session, false, "@call", session, reply_to, method, ...)
    if not sent then return send_failed(err) end
    return wait(session, { stream = stream, token = stream.token, tracked = true }, timeout_ms)
end

--- A call to every node of a group through a router; returns { [service id] = answer },
--- each answer `{ ok = true, n = count, ... }` or `{ ok = false, err = reason }`.
function M.broadcast_call(timeout_ms, stream, reply_to, group, method, ...)
    check_coroutine("a broadcast call")
    local session = new_session()
    local sent, err = stream._forward("broadcast", group, 0, session, false, "@call", session, reply_to, method, ...)
    if not sent then return send_failed(err) end
    local record = { stream = stream, token = stream.token, tracked = true, results = {} }
    return wait(session, record, timeout_ms)
end

-- An answer arrived: ("@ret", session, from_id, ok, ...).
local function on_return(session, from, ok, ...)
    local record = pending[session]
    if not record then
        stats.late_replies = stats.late_replies + 1
        log.debug("rpc: dropped a late or unknown answer for session " .. tostring(session))
        return
    end
    if not ok then stats.remote_errors = stats.remote_errors + 1 end
    if record.results then
        local answer = ok and pack(...) or { err = "remote-error: " .. tostring((...)) }
        answer.ok = ok and true or false
        record.results[from] = answer
        return broadcast_done(session, record)
    end
    take(session)
    stats.completed = stats.completed + 1
    if ok then
        luna.resume(record.co, true, ...)
    else
        luna.resume(record.co, false, "remote-error: " .. tostring((...)))
    end
end

local function reply(stream, session, reply_to, self_id, ...)
    if reply_to == 0 then
        return stream.call("@ret", session, self_id, ...)
    end
    return stream._forward("target", reply_to, 0, session, true, "@ret", session, self_id, ...)
end

local function error_message(err)
    log.error("error in rpc handler: " .. debug.traceback(tostring(err), 2))
    return tostring(err)
end

-- Runs in its own coroutine: calls the handler and sends its results back.
local function run_handler(stream, handlers, self_id, session, reply_to, method, ...)
    local handler = handlers and handlers[method]
    if type(handler) ~= "function" then
        log.warn("rpc: no handler for method '" .. tostring(method) .. "'")
        return reply(stream, session, reply_to, self_id, false, "no method '" .. tostring(method) .. "'")
    end
    local result = pack(xpcall(handler, error_message, ...))
    if not result[1] then
        return reply(stream, session, reply_to, self_id, false, result[2])
    end
    local sent, err = reply(stream, session, reply_to, self_id, true, unpack(result, 2, result.n))
    if not sent and err ~= "closed" then
        log.error("rpc: cannot send the results of '" .. tostring(method) .. "': " .. err)
        reply(stream, session, reply_to, self_id, false, "cannot send the results: " .. err)
    end
end

--- Handles one message of a served stream: calls, answers and one-way
--- messages named after a handler. Returns false for anything else.
function M.dispatch(stream, handlers, self_id, msg, ...)
    if msg == "@call" then
        luna.go(run_handler, stream, handlers, self_id, ...)
        return true
    elseif msg == "@ret" then
        on_return(...)
        return true
    end
    local handler = handlers and handlers[msg]
    if type(handler) == "function" then
        luna.go(handler, ...)
        return true
    end
    return false
end

--- Router report: a tracked call failed (no-route, send-buffer-full, connection-lost).
function M.call_failed(session, err, mode, target)
    local record = pending[session]
    if not record then return end
    if record.results and err == "connection-lost" then
        record.results[target] = { ok = false, err = err }
        stats.connection_lost = stats.connection_lost + 1
        return broadcast_done(session, record)
    end
    fail(session, err)
end

--- Router report: the service ids a broadcast call reached.
function M.broadcast_targets(session, ids)
    local record = pending[session]
    if record and record.results then
        record.expected = ids
        broadcast_done(session, record)
    end
end

--- Makes `stream` answer calls with `handlers` (looked up on every call, so
--- reloaded functions take effect) and deliver answers to its callers.
--- Other messages go to `fallback(msg, ...)` if given.
function M.serve(stream, handlers, fallback)
    if stream._rpc_served and handlers == nil and fallback == nil then return stream end
    local existing = rawget(stream, "on_call")
    if existing and not stream._rpc_served and fallback == nil then
        fallback = existing -- keep the script's own handler for plain messages
    end
    stream._rpc_served = true
    stream.on_call = function(msg, ...)
        if not M.dispatch(stream, handlers, 0, msg, ...) then
            if fallback then return fallback(msg, ...) end
            log.warn("rpc: no handler for message '" .. tostring(msg) .. "'")
        end
    end
    stream.on_call_failed = M.call_failed
    stream.on_broadcast_targets = M.broadcast_targets
    return stream
end

-- A stream went away: its calls fail now rather than at their timeout.
local function stream_closed(token)
    if pending_count == 0 then return end
    local lost = {}
    for session, record in pairs(pending) do
        if record.token == token then lost[#lost + 1] = session end
    end
    for _, session in ipairs(lost) do fail(session, "connection-lost") end
end
luna._set_hooks({ on_stream_closed = stream_closed })

local views = {}

--- The call functions with a different timeout: rpc.timeout(500).call(stream, ...).
function M.timeout(ms)
    local view = views[ms]
    if not view then
        view = { call = function(...) return direct_call(ms, ...) end }
        views[ms] = view
    end
    return view
end

--- Calls `method` on the far end of `stream`; returns its results or nil, err.
function M.call(stream, method, ...)
    return direct_call(nil, stream, method, ...)
end

--- Runs fn(...) in a coroutine and passes its results to callback (for code
--- outside coroutines): rpc.async(rpc.call, print, stream, "ping").
function M.async(fn, callback, ...)
    return luna.go(function(...) callback(fn(...)) end, ...)
end

return M
