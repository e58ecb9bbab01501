-- A service with a timer. Run it, then edit greeting.lua while it runs:
-- the next tick uses the new code, and `count` keeps its value.
--
--   cargo run --release -- examples/hello/main.lua
local greeting = import("greeting.lua")

count = count or 0

function on_start()
    luna.log.info("hello service started; edit examples/hello/greeting.lua and watch the output")
    luna.interval(1000, function()
        count = count + 1
        print(greeting.say(count))
    end)
end

function on_reload(path)
    luna.log.info("now running the new code of " .. path)
end

function on_stop()
    print("bye after " .. count .. " ticks")
end
