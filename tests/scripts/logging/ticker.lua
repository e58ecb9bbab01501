-- Every 20 ms: logs "tick N" and prints "tick N" on stdout, until a quit signal.
local n = 0

function on_start()
    luna.interval(20, function()
        n = n + 1
        luna.log.info("tick " .. n)
        print("tick " .. n)
    end)
    print("started")
end
