-- Its own on_quit_signal: prints `draining <signo>`, quits 20 ms later.
function on_start() print("ready") end
function on_quit_signal(signo)
    print("draining", signo)
    luna.timer(20, function() luna_quit_flag = true end)
end
function on_stop() print("stopped") end
