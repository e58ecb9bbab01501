-- `luna ten_mib.lua <port>`: one 10 MiB message through the echo server.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
local blob = string.rep("0123456789abcdef", 10 * 1024 * 1024 // 16)
stream.on_connect = function() print("queued", stream.call("big", blob, #blob)) end
stream.on_call = function(kind, msg, data, len)
    print("got back", msg, len, data == blob)
    luna_quit_flag = true
end
