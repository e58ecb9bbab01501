-- on_start, three passes of on_loop (driving mgr.wait itself), on_stop.
local passes = 0
local mgr = luna.create_socket_mgr(10)
function on_start(a, b) print("start", a, b) end
function on_loop(now)
    assert(math.type(now) == "integer")
    passes = passes + 1
    print("loop " .. passes)
    mgr.wait(5)
    if passes == 3 then luna_quit_flag = true end
end
function on_stop() print("stop") end
