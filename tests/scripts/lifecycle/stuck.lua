-- A timer that never returns: prints `spinning`, then blocks the main thread.
function on_start()
    print("ready")
    luna.timer(10, function()
        print("spinning")
        while true do end
    end)
end
