-- Prints "tick N" every 20 ms on stdout; 50 ms after the start logs COUNT
-- lines at once, then prints "logged COUNT dropped D" (D: luna.log.dropped()).
local n = 0

function on_start(count)
    count = math.tointeger(tonumber(count))
    luna.interval(20, function()
        n = n + 1
        print("tick " .. n)
    end)
    luna.timer(50, function()
        for i = 1, count do
            luna.log.info("flood " .. i)
        end
        print("logged " .. count .. " dropped " .. luna.log.dropped())
    end)
end
