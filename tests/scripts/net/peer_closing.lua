-- `luna peer_closing.lua <port>`: keeps writing to a peer that closed at once.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
stream.on_connect = function()
    luna.interval(5, function() stream.call("x", string.rep("y", 10000)) end)
end
stream.on_error = function(err) print("error " .. err); luna.timer(50, function() luna_quit_flag = true end) end
