-- `luna thousand_clients.lua <port>`: 1000 streams to the echo server at
-- once; prints `all connected`, then `all replied` once each got its answer.
local mgr = luna.create_socket_mgr(2000)
local port = tonumber(luna.args[1])
streams = {}
local connected, replied = 0, 0
for i = 1, 1000 do
    local s = assert(mgr.connect("127.0.0.1", port, 10000))
    streams[i] = s
    s.on_connect = function(result)
        assert(result == "ok", result)
        connected = connected + 1
        if connected == 1000 then
            print("all connected")
            for j, t in ipairs(streams) do t.call("hi", j) end
        end
    end
    s.on_call = function(kind, msg, j)
        assert(j == i)
        replied = replied + 1
        if replied == 1000 then print("all replied"); luna_quit_flag = true end
    end
    s.on_error = function(err) print("client error " .. err) end
end
