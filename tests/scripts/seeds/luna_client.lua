-- The luna README, "网络" section (global create_socket_mgr, on_connected,
-- on_recv): `luna luna_client.lua <port>`, unchanged but for the fixed port
-- 8080 (here luna.args[1]) and the quit at the end.
socket_mgr = create_socket_mgr(100);
mgr = socket_mgr
acc, password = "bob", "pw"
--连接都是异步进行的,一直要stream上面触发'on_connected'事件后,连接才可用
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]));
stream.on_connected = function()
    print("client on_connected")
    stream.call("on_login", acc, password);
end

stream.on_error = function (err)
    --发生任何错误时触发
    print("client on_error", err)
end

stream.on_recv = function (msg, ...)
    --收到对端消息时触发.
    print("client on_recv", msg, ...)
    stream.close();
    luna_quit_flag = true
end

function on_loop()
    socket_mgr.wait(50);
end
