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
-- Wire: a call is the message ("@call", session, reply_to, method, ...), or
-- ("@tcall", session, reply_to, trace, method, ...) when it carries a trace
-- id; the answer is ("@ret", session, from_id, ok, ...). reply_to is the
-- caller's service id for routed calls, 0 for a direct stream.
--
-- Trace ids: a call made while handling a traced call or message carries
-- the same trace id; with rpc.tracing = true, a call made outside one starts
-- a new trace. luna.trace_id() reads it in a handler, log lines written
-- there carry it, and luna.with_trace(id, fn, ...) runs fn under a given id.
--
-- Calls and routed calls are made and answered in the core (src/lua/calls.rs):
-- stream._call / stream._rcall send the call and park the coroutine; the
-- core matches the answer to its session, times calls out on their
-- deadline and resumes the coroutine with the results, with no Lua in
-- between. Broadcast calls, which gather several answers, are kept here,
-- on sessions from 0x80000000 up (the core's are below).
local luna = luna
local log = luna.log
local timer_start, now_ms = luna.timer_start, luna.get_time_ms
local running, yield, isyieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
local pack, type, tostring, traceback = table.pack, type, tostring, debug.traceback

local M = {}

--- Milliseconds a call waits for its answer unless told otherwise.
M.default_timeout_ms = 5000

-- Counters (see M.stats).
local calls, completed, timeouts, late_replies, connection_lost, no_route, remote_errors = 0, 0, 0, 0, 0, 0, 0
local serving = 0 -- calls being handled here now

-- Pending calls, by session.
local waiting = {} -- session -> coroutine waiting for the answer
local via = {} -- session -> stream the call went out on
local deadline_of = {} -- session -> deadline (ms)
local tracked = {} -- session -> true for calls a router tracks
local gathering = {} -- session -> broadcast state { results = {}, expected = ids or false }
local pending_count = 0
local LUA_SESSIONS = 0x80000000 -- sessions from here up are ours; the core's are below
local next_session = math.random(LUA_SESSIONS, 0xffffffff) -- random start: a restarted caller does not reuse recent ids

-- A session id no pending broadcast call uses.
local function new_session()
    repeat
        next_session = next_session + 1
        if next_session > 0xffffffff then next_session = LUA_SESSIONS end
    until waiting[next_session] == nil
    return next_session
end

local core_stats = luna._rpc_stats -- the counters of the calls the core makes and answers

--- Counters: calls, completed, timeouts, late_replies, connection_lost, no_route, remote_errors,
--- pending (our calls waiting for answers) and serving (calls being handled here).
function M.stats()
    local core = core_stats()
    return {
        calls = calls + core.calls, completed = completed + core.completed, timeouts = timeouts + core.timeouts,
        late_replies = late_replies + core.late_replies, connection_lost = connection_lost + core.connection_lost,
        no_route = no_route + core.no_route, remote_errors = remote_errors + core.remote_errors,
        pending = pending_count + core.pending, serving = serving,
    }
end

local resume_logged = luna.resume -- logs an error with the coroutine's traceback
local go = luna.go -- runs a function in a pooled coroutine (runtime_lua/timer.lua)

-- Trace ids, per coroutine (runtime_lua/trace.lua has luna.trace_id and luna.with_trace).
local trace_ids = require("luna.trace")
local traces = trace_ids.by_coroutine
local trace_key = trace_ids.key -- the running code's key in `traces` (calls, always in coroutines, use running())
local current_trace = luna.trace_id

--- Calls and traced forwards made outside a traced handler start a new trace when true.
M.tracing = false

M.current_trace = current_trace

--- The trace id an outgoing call or forward carries: the current one, or a
--- new one when tracing is on; nil otherwise.
function M.outgoing_trace()
    local id = traces[trace_key()]
    if id == nil and M.tracing then id = trace_ids.new_id() end
    return id
end

-- Deadlines of broadcast calls. While one is pending, a timer sweeps them
-- every SWEEP_MS and times out the late ones (a timeout fires at most
-- SWEEP_MS after its deadline). With nothing pending, no timer runs.
local SWEEP_MS = 50
local sweeping = false
local on_timeout

-- Times out the calls past their deadline; runs again while calls are pending.
local function sweep()
    local now = now_ms()
    local expired = nil
    for session, deadline in pairs(deadline_of) do
        if deadline <= now then
            expired = expired or {}
            expired[#expired + 1] = session
        end
    end
    -- Timing out resumes callers, which may start calls: not while iterating.
    if expired then
        for _, session in ipairs(expired) do on_timeout(session) end
    end
    if pending_count > 0 then
        timer_start(SWEEP_MS, nil, sweep)
    else
        sweeping = false
    end
end

-- Forgets a pending call; returns its coroutine (nil if it was not pending).
local function take(session)
    local co = waiting[session]
    if co then
        waiting[session], via[session], deadline_of[session] = nil, nil, nil
        tracked[session], gathering[session] = nil, nil
        pending_count = pending_count - 1
    end
    return co
end

-- The call returns nil, err.
local function fail(session, err)
    local co = take(session)
    if not co then return end
    if err == "connection-lost" then
        connection_lost = connection_lost + 1
    elseif err == "no-route" then
        no_route = no_route + 1
    end
    resume_logged(co, false, err)
end

-- Resumes a broadcast caller once every expected answer is in.
local function broadcast_done(session, state)
    if not state.expected then return end
    for _, id in ipairs(state.expected) do
        if state.results[id] == nil then return end
    end
    local co = take(session)
    completed = completed + 1
    resume_logged(co, true, state.results)
end

-- A call timed out: its router forgets it; a broadcast returns what it has.
function on_timeout(session)
    if not waiting[session] then return end
    timeouts = timeouts + 1
    if tracked[session] then
        via[session]._cancel(session) -- let the router forget it
    end
    local state = gathering[session]
    if state then
        for _, id in ipairs(state.expected or {}) do
            if state.results[id] == nil then state.results[id] = { ok = false, err = "timeout" } end
        end
        local co = take(session)
        return resume_logged(co, true, state.results)
    end
    fail(session, "timeout")
end

-- A call's results from how its coroutine was resumed: results, or nil, err.
local function finish(ok, ...)
    if ok then return ... end
    return nil, ...
end

-- Parks coroutine `co` until the answer of `session` (sent on `stream`) arrives.
local function wait(co, session, stream, timeout_ms)
    waiting[session], via[session] = co, stream
    deadline_of[session] = now_ms() + (timeout_ms or M.default_timeout_ms)
    if not sweeping then
        sweeping = true
        timer_start(SWEEP_MS, nil, sweep)
    end
    pending_count = pending_count + 1
    calls = calls + 1
    return finish(yield())
end

-- The running coroutine, or an error when calls cannot wait here.
local function caller(what)
    local co, is_main = running()
    if is_main or not isyieldable() then
        error(what .. " must run inside a coroutine (start one with luna.go)", 3)
    end
    return co
end

-- A call that could not be sent. `shift`: how many values the call adds in
-- front of the user's arguments, so "argument #N" counts from the user's call.
local function send_failed(err, shift)
    if err == "closed" then return nil, "connection-lost" end
    err = tostring(err):gsub("argument #(%d+)", function(n) return "argument #" .. (tonumber(n) - shift) end)
    return nil, err
end

-- Sends a broadcast call through a router, with the trace id when there is one.
local function forward_call(stream, mode, target, key, session, reply_to, method, ...)
    local trace = M.outgoing_trace()
    if trace then
        local sent, err = stream._forward(mode, target, key, session, false, "@tcall", session, reply_to, trace, method, ...)
        return sent, err, 1
    end
    local sent, err = stream._forward(mode, target, key, session, false, "@call", session, reply_to, method, ...)
    return sent, err, 0
end

--- A call through a router: `mode` is target, master, random or hash (see luna.cluster).
function M.routed_call(timeout_ms, stream, reply_to, mode, target, key, method, ...)
    local trace = traces[running()]
    if trace == nil and M.tracing then trace = trace_ids.new_id() end
    return stream._rcall(timeout_ms or M.default_timeout_ms, trace, reply_to, mode, target, key, method, ...)
end

--- A call to every node of a group through a router; returns { [service id] = answer },
--- each answer `{ ok = true, n = count, ... }` or `{ ok = false, err = reason }`.
function M.broadcast_call(timeout_ms, stream, reply_to, group, method, ...)
    local co = caller("a broadcast call")
    local session = new_session()
    local sent, err, extra = forward_call(stream, "broadcast", group, 0, session, reply_to, method, ...)
    if not sent then return send_failed(err, 7 + (extra or 0)) end
    tracked[session] = true
    gathering[session] = { results = {}, expected = false }
    return wait(co, session, stream, timeout_ms)
end

-- An answer arrived: ("@ret", session, from_id, ok, ...).
local function on_return(session, from, ok, ...)
    local state = gathering[session]
    if state then
        if not ok then remote_errors = remote_errors + 1 end
        local answer = ok and pack(...) or { err = "remote-error: " .. tostring((...)) }
        answer.ok = ok and true or false
        state.results[from] = answer
        return broadcast_done(session, state)
    end
    local co = take(session)
    if not co then
        late_replies = late_replies + 1
        log.debug("rpc: dropped a late or unknown answer for session " .. tostring(session))
        return
    end
    completed = completed + 1
    if ok then
        return resume_logged(co, true, ...)
    end
    remote_errors = remote_errors + 1
    resume_logged(co, false, "remote-error: " .. tostring((...)))
end

-- A handler's error: logged with its traceback; the message goes back.
local function error_message(err)
    log.error("error in rpc handler: " .. traceback(tostring(err), 2))
    return tostring(err)
end

-- The results could not be sent (a value that cannot be encoded): the caller gets why.
local function reply_failed(stream, session, reply_to, self_id, method, err)
    log.error("rpc: cannot send the results of '" .. tostring(method) .. "': " .. err)
    stream._reply(session, reply_to, self_id, false, "cannot send the results: " .. err)
end

--- The function that answers the calls of `stream` in a coroutine of its
--- own: `serve(session, reply_to, method, ...)` runs owner.handlers[method]
--- (looked up on every call, so reloaded handlers take effect) and answers
--- as `self_id`. rpc.serve and luna.cluster set it as the stream's
--- `_on_rpc`, which the core runs in one of its worker coroutines for each
--- call without a trace id (src/lua/calls.rs), with no Lua dispatch.
function M.call_server(stream, owner, self_id)
    -- stream._reply answers on the stream, or through the router to reply_to,
    -- and takes xpcall's results as they are (true, results... or false, message).
    local reply = stream._reply
    return function(session, reply_to, method, ...)
        local handlers = owner.handlers
        local handler = handlers and handlers[method]
        if type(handler) ~= "function" then
            log.warn("rpc: no handler for method '" .. tostring(method) .. "'")
            return reply(session, reply_to, self_id, false, "no method '" .. tostring(method) .. "'")
        end
        serving = serving + 1
        local sent, err = reply(session, reply_to, self_id, xpcall(handler, error_message, ...))
        serving = serving - 1
        if not sent and err ~= "closed" then reply_failed(stream, session, reply_to, self_id, method, err) end
    end
end

-- A worker coroutine of the core runs jobs (fn, ...) one after the other,
-- yielding PARKED after each; the core then keeps it for the next call.
local PARKED = setmetatable({}, { __name = "luna.rpc worker (parked)" })
local function worker(fn, ...)
    fn(...)
    return worker(yield(PARKED))
end
luna._set_hooks({ rpc_worker = worker, rpc_parked = PARKED })

-- The answering function of a stream: its own, or one for these handlers.
local function server_of(stream, handlers, self_id)
    return rawget(stream, "_on_rpc") or M.call_server(stream, { handlers = handlers }, self_id)
end

-- A call that carries a trace id: the handler's coroutine has it while it runs.
local function run_traced_call(serve, session, reply_to, trace, ...)
    local co = running()
    traces[co] = trace
    serve(session, reply_to, ...)
    traces[co] = nil
end

-- Runs a one-way message handler under a trace id (in its own coroutine).
local function run_traced(trace, handler, ...)
    local co = running()
    traces[co] = trace
    handler(...)
    traces[co] = nil
end

-- Runs a one-way message named after a handler (under the current trace, if
-- any); false if there is none.
local function one_way(handlers, msg, ...)
    local handler = handlers and handlers[msg]
    if type(handler) ~= "function" then return false end
    local trace = current_trace()
    if trace then
        go(run_traced, trace, handler, ...)
    else
        go(handler, ...)
    end
    return true
end

--- Handles one message of a served stream: calls, answers and one-way
--- messages named after a handler. Returns false for anything else.
local function dispatch(stream, handlers, self_id, msg, ...)
    if msg == "@call" then
        go(server_of(stream, handlers, self_id), ...)
        return true
    elseif msg == "@ret" then
        on_return(...)
        return true
    elseif msg == "@tcall" then
        go(run_traced_call, server_of(stream, handlers, self_id), ...)
        return true
    end
    return one_way(handlers, msg, ...)
end
M.dispatch = dispatch

--- Router report: a tracked call failed (no-route, send-buffer-full, connection-lost).
function M.call_failed(session, err, mode, target)
    local state = gathering[session]
    if state and err == "connection-lost" then
        state.results[target] = { ok = false, err = err }
        connection_lost = connection_lost + 1
        return broadcast_done(session, state)
    end
    fail(session, err)
end

--- Router report: the service ids a broadcast call reached.
function M.broadcast_targets(session, ids)
    local state = gathering[session]
    if state then
        state.expected = ids
        broadcast_done(session, state)
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
    stream._on_rpc = M.call_server(stream, { handlers = handlers }, 0)
    stream.on_call = function(msg, ...)
        if dispatch(stream, handlers, 0, msg, ...) then return end
        if fallback then return fallback(msg, ...) end
        log.warn("rpc: no handler for message '" .. tostring(msg) .. "'")
    end
    stream.on_call_failed = M.call_failed
    stream.on_broadcast_targets = M.broadcast_targets
    return stream
end

-- A stream went away: its calls fail now rather than at their timeout.
local function stream_closed(token)
    if pending_count == 0 then return end
    local lost = {}
    for session, stream in pairs(via) do
        if stream.token == token then lost[#lost + 1] = session end
    end
    for _, session in ipairs(lost) do fail(session, "connection-lost") end
end
luna._set_hooks({ on_stream_closed = stream_closed })

-- A call on a stream, answered on the same stream (the core waits for the answer).
local function direct_call(timeout_ms, stream, method, ...)
    if not stream._rpc_served then M.serve(stream) end
    local trace = traces[running()]
    if trace == nil and M.tracing then trace = trace_ids.new_id() end
    return stream._call(timeout_ms or M.default_timeout_ms, trace, method, ...)
end

local views, cached = {}, 0
local MAX_TIMEOUT_VIEWS = 64 -- views kept: a timeout computed per call must not grow the process

--- The call functions with a different timeout: rpc.timeout(500).call(stream, ...).
function M.timeout(ms)
    local view = views[ms]
    if not view then
        view = { call = function(...) return direct_call(ms, ...) end }
        if cached < MAX_TIMEOUT_VIEWS then
            views[ms], cached = view, cached + 1
        end
    end
    return view
end

--- Calls `method` on the far end of `stream`; returns its results or nil, err.
function M.call(stream, method, ...)
    if not stream._rpc_served then M.serve(stream) end
    local trace = traces[running()]
    if trace == nil and M.tracing then trace = trace_ids.new_id() end
    return stream._call(M.default_timeout_ms, trace, method, ...)
end

--- Runs fn(...) in a coroutine and passes its results to callback (for code
--- outside coroutines): rpc.async(rpc.call, print, stream, "ping").
function M.async(fn, callback, ...)
    return luna.go(function(...) callback(fn(...)) end, ...)
end

return M
