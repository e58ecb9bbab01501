-- `luna max_fd_client.lua <port>`: a manager bounded to two streams refuses
-- a third connect at once; closing one makes room again.
local mgr = luna.create_socket_mgr(2)
local port = tonumber(luna.args[1])
a = mgr.connect("127.0.0.1", port, 2000)
b = mgr.connect("127.0.0.1", port, 2000)
print("third", mgr.connect("127.0.0.1", port, 2000))
b.close()
c = mgr.connect("127.0.0.1", port, 2000)
print("after close", c ~= nil)
