-- Timers and coroutines: luna.timer, luna.interval, luna.go, luna.sleep.
local luna = luna
local timer_start, timer_cancel = luna.timer_start, luna.timer_cancel
local create, resume, running, yield, status = coroutine.create, coroutine.resume, coroutine.running, coroutine.yield, coroutine.status
local traceback = debug.traceback

local function handle(id)
    return { id = id, cancel = function() return timer_cancel(id) end }
end

--- Calls fn once after ms milliseconds; returns a handle with .cancel().
function luna.timer(ms, fn)
    local id, err = timer_start(ms, nil, fn)
    if not id then error("luna.timer: " .. err, 2) end
    return handle(id)
end

--- Calls fn every ms milliseconds until cancelled; returns a handle with .cancel().
function luna.interval(ms, fn)
    if type(ms) ~= "number" or ms <= 0 then error("luna.interval: the period must be a number > 0", 2) end
    local id, err = timer_start(ms, ms, fn)
    if not id then error("luna.interval: " .. err, 2) end
    return handle(id)
end

--- Cancels a timer by handle or id; true if it was pending.
function luna.cancel_timer(timer)
    return timer_cancel(type(timer) == "table" and timer.id or timer)
end

-- Logs the error a coroutine ended with, with its traceback.
local function failed(co, err)
    luna.log.error("error in coroutine: " .. traceback(co, tostring(err)))
end

local function checked(co, ok, ...)
    if not ok then failed(co, (...)) end
    return ok, ...
end

--- Resumes a coroutine, logging an error with its traceback; returns resume's results.
function luna.resume(co, ...)
    return checked(co, resume(co, ...))
end

-- Finished coroutines wait here for their next job: creating a coroutine
-- costs allocations and GC work that a busy RPC server would pay per call.
local idle = {}
local MAX_IDLE = 256

local function run(fn, ...)
    return fn(...)
end

local function new_worker()
    return create(function(fn, ...)
        fn(...)
        while #idle < MAX_IDLE do
            idle[#idle + 1] = running()
            run(yield()) -- parked until luna.go hands over the next (fn, ...)
        end
    end)
end

--- Runs fn(...) in a coroutine now; errors are logged with a traceback.
--- Coroutines are pooled: once fn returns, the returned coroutine may run
--- other work.
function luna.go(fn, ...)
    local co = idle[#idle]
    if co then
        idle[#idle] = nil
    else
        co = new_worker()
    end
    -- Only the status matters here: no varargs pass through checked on this hot path.
    local ok, err = resume(co, fn, ...)
    if not ok then failed(co, err) end
    return co
end

--- Suspends the running coroutine for ms milliseconds.
function luna.sleep(ms)
    local co, is_main = running()
    if is_main then
        error("luna.sleep must run inside a coroutine (start one with luna.go)", 2)
    end
    timer_start(ms, nil, function()
        if status(co) == "suspended" then luna.resume(co) end
    end)
    return yield()
end
