-- The luabus README, client side: `luna luabus_client.lua <port>`, unchanged
-- but for the fixed port 8080 (here luna.args[1]) and the quit at the end.
lbus = require("lbus");
socket_mgr = lbus.create_socket_mgr(100);
mgr = socket_mgr
acc, password = "alice", "secret"

stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000);
--设置连接事件回调:
stream.on_connect = function(result)
    print("client on_connect", result)
    stream.call("on_login", acc, password);
end

stream.on_error = function (err)
    print("client on_error", err)
end

stream.on_call = function (msg, ...)
    print("client on_call", msg, ...)
    --设置多久没收到消息就超时,默认不超时
    stream.set_timeout(2000);
    --设置nodelay属性,默认设置为true
    stream.set_nodelay(true);
    --设置收发缓冲区,至少应该可以容纳一条消息,默认64K
    stream.set_recv_buffer_size(1024 * 64);
    stream.set_send_buffer_size(1024 * 64);
    stream.close();
    luna_quit_flag = true
end

function on_loop()
    socket_mgr.wait(50);
end
