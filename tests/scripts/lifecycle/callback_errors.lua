-- Errors in a timer and in a coroutine; an interval shows the process goes on.
local ticks = 0
function on_start()
    luna.timer(5, function() error("timer exploded") end)
    luna.go(function() luna.sleep(5); error("coroutine exploded") end)
    luna.interval(10, function()
        ticks = ticks + 1
        if ticks == 5 then print("still alive"); luna_quit_flag = true end
    end)
end
