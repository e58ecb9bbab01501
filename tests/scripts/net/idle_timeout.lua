-- `luna idle_timeout.lua <port>`: a 200 ms idle timeout that traffic keeps
-- away for a while, then closes the silent stream.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
local t0
stream.on_connect = function()
    stream.set_timeout(200)
    t0 = luna.get_time_ms()
    -- Traffic keeps it alive for a while.
    for i = 1, 3 do luna.timer(i * 100, function() stream.call("keepalive") end) end
end
stream.on_call = function() end
stream.on_error = function(err)
    print("closed " .. err .. " after>=450 " .. tostring(luna.get_time_ms() - t0 >= 450))
    luna_quit_flag = true
end
