-- An on_quit_signal that never quits: only a second signal stops it.
function on_start() print("ready") end
function on_quit_signal(signo) print("draining forever") end
