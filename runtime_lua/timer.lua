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

--- Resumes a coroutine, logging an error with its traceback; returns resume's results.
function luna.resume(co, ...)
    local result = table.pack(resume(co, ...))
    if not result[1] then
        luna.log.error("error in coroutine: " .. traceback(co, tostring(result[2])))
    end
    return table.unpack(result, 1, result.n)
end

--- Runs fn(...) in a new coroutine now; errors are logged with a traceback.
function luna.go(fn, ...)
    local co = create(fn)
    luna.resume(co, ...)
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
