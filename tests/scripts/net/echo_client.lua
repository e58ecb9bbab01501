-- `luna echo_client.lua <port>`: 100 pings to the echo server, each reply checked.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
stream.count = 0 -- objects take extra fields
stream.on_connect = function(result)
    print("connect " .. result)
    print("types", type(stream.token), stream.ip, stream.port == tonumber(luna.args[1]))
    for i = 1, 100 do assert(stream.call("ping", i, "hello")) end
end
stream.on_call = function(kind, msg, i, text)
    stream.count = stream.count + 1
    assert(kind == "echo" and msg == "ping" and i == stream.count and text == "hello")
    if stream.count == 100 then print("all replies"); luna_quit_flag = true end
end
