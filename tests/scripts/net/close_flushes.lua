-- `luna close_flushes.lua <port>`: queues 1 MB, closes, and tries to send after.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
stream.on_connect = function()
    stream.call("last words", string.rep("w", 1000000))
    stream.close()
    print("after close", stream.call("too late"))
    luna.timer(200, function() luna_quit_flag = true end)
end
