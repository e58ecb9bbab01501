-- `luna receiver.lua`: prints `port <n>`, counts the ("data", i, bytes)
-- messages of one sender (in order) and prints the totals when it leaves.
local mgr = luna.create_socket_mgr(10)
listener = mgr.listen("127.0.0.1", 0)
local count, bytes = 0, 0
listener.on_accept = function(stream)
    held = stream
    stream.on_call = function(msg, i, data)
        count = count + 1
        bytes = bytes + #data
        assert(i == count, "out of order")
    end
    stream.on_error = function(err) print("received " .. count .. " bytes " .. bytes .. " then " .. err) end
end
print("port " .. listener.port)
