-- No on_loop: the runtime drives the loop; a timer quits.
function on_start()
    print("start")
    luna.timer(30, function() print("timer"); luna_quit_flag = true end)
end
function on_stop() print("stop") end
