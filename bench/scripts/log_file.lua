-- luna-bench: logging into a file (W10.file). args: count.
-- Run with --log-file. Prints "start", logs `count` lines like
-- "bench line <i> user=42 action=login ok" as fast as it can, prints
-- "logged <count> <ns> <dropped>" and quits (the lines are flushed on exit).
local count = assert(math.tointeger(tonumber(luna.args[1])), "count")
local info = luna.log.info

function on_start()
    print("start")
    local t0 = luna.get_time_ns()
    for i = 1, count do
        info("bench line", i, "user=42 action=login ok")
    end
    print(string.format("logged %d %d %d", count, luna.get_time_ns() - t0, luna.log.dropped()))
    luna_quit_flag = true
end
