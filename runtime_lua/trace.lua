-- luna.trace: the trace id of the call or message being handled, per
-- coroutine (the main thread included): luna.trace_id() and
-- luna.with_trace(id, fn, ...). luna.rpc and luna.cluster carry it across
-- calls and forwards, and log lines written under one carry it
-- (runtime_lua/log.lua). Loaded by init.lua, so that scripts that use no
-- RPC have these too; not a public module of its own.
local luna = luna
local running, pack, unpack, traceback = coroutine.running, table.pack, table.unpack, debug.traceback

local M = {}

--- Trace ids by coroutine, while it handles a traced call or message
--- (luna.rpc sets and clears them on its hot path); the main thread's is at
--- key 1 (see M.key).
M.by_coroutine = setmetatable({}, { __mode = "k" })
local traces = M.by_coroutine
-- The core makes a traced message's id current for its handler in this table.
luna._set_hooks({ traces = traces })

--- The key of the running code in the table: 1 on the main thread (where
--- the core calls handlers: an integer key costs it less than a thread),
--- else the coroutine.
local function key()
    local co, main = running()
    if main then return 1 end
    return co
end
M.key = key

local prefix = string.format("%08x", math.random(0, 0x7fffffff)) -- this process's, at random
local count = 0

--- A new trace id: this process's random prefix and a counter.
function M.new_id()
    count = count + 1
    return prefix .. string.format("%08x", count & 0xffffffff)
end

--- The trace id of the call or message being handled here, or nil.
function luna.trace_id()
    return traces[key()]
end

--- Runs fn(...) with `trace` as the current trace id; returns fn's results.
function luna.with_trace(trace, fn, ...)
    local co = key()
    local previous = traces[co]
    traces[co] = trace
    local results = pack(xpcall(fn, traceback, ...))
    traces[co] = previous
    if not results[1] then error(results[2], 0) end
    return unpack(results, 2, results.n)
end

return M
