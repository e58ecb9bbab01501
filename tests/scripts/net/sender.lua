-- `luna sender.lua <port>`: queues 5000 messages of 4 KiB, then prints `sent`.
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
stream.on_connect = function()
    local chunk = string.rep("z", 4096)
    for i = 1, 5000 do assert(stream.call("data", i, chunk)) end
    print("sent")
end
