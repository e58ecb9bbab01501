-- Keeps serving on the first quit signal (a second one makes luna exit at once).
function on_start()
    luna.log.info("holding on")
    print("started")
end

function on_quit_signal(signo)
    print("holding " .. signo)
end
