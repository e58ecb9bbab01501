-- The luabus README, "网络" section, as a server process: unchanged but for
-- the fixed port 8080 (here 0, a free one) and the `port <n>` line at the end.
lbus = require("lbus");
socket_mgr = lbus.create_socket_mgr(100);
mgr = socket_mgr
listener = mgr.listen("127.0.0.1", 0);
streams = {}

--设置accept回调
listener.on_accept = function(stream)
    streams[#streams + 1] = stream
    stream.on_call = function(msg, ...)
        print("server on_call", msg, ...)
        stream.call("on_login_ok", ...)
    end

    stream.on_error = function(err)
        print("server on_error", err)
    end
end

function on_loop()
    --用户需要在主循环中调用wait函数,比如:
    socket_mgr.wait(50);
end
print("port " .. listener.port)
