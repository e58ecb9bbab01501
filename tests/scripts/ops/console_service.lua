-- A service with a ticker, for the console tests of tests/ops.rs: the ticks
-- show the loop goes on while console clients misbehave.
ticks = ticks or 0

function on_start()
    luna.interval(50, function()
        ticks = ticks + 1
        print("tick " .. ticks)
    end)
    print("ready")
end
