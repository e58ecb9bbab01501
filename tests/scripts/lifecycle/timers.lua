-- Timers: cancelled, repeating, sleeping in a coroutine, sleeping outside one.
function on_start()
    local fired = 0
    local cancelled = luna.timer(20, function() print("must not fire") end)
    assert(cancelled.cancel() == true)
    assert(cancelled.cancel() == false)
    local every
    every = luna.interval(5, function()
        fired = fired + 1
        if fired == 3 then every.cancel(); print("interval x3") end
    end)
    luna.go(function(a)
        local t0 = luna.get_time_ms()
        luna.sleep(30)
        print("slept", a, luna.get_time_ms() - t0 >= 29)
        luna.timer(30, function() luna_quit_flag = true end)
    end, "co")
    local ok, err = pcall(luna.sleep, 1)
    print("sleep outside coroutine", ok, err:match("inside a coroutine") ~= nil)
end
