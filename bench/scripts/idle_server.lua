-- luna-bench: accepts idle connections (W6). args: expected_connections
-- Keeps every stream (with on_call and on_error handlers, as a service
-- would). Every 50 ms prints "count <n>" when the number changed, else
-- runs a full GC once and prints "settled <n>".
local expected = assert(tonumber(luna.args[1]), "expected connections")
mgr = luna.create_socket_mgr(expected + 100)
streams = {}
local n = 0

listener = assert(mgr.listen("127.0.0.1", 0, 4096))
listener.on_accept = function(stream)
    n = n + 1
    streams[stream.token] = stream
    stream.on_call = function(msg)
        print("error unexpected message " .. tostring(msg))
    end
    stream.on_error = function(err)
        streams[stream.token] = nil
        n = n - 1
    end
end

local last, settled = -1, false
ticker = luna.interval(50, function()
    if n ~= last then
        last, settled = n, false
        print("count " .. n)
    elseif not settled then
        settled = true
        collectgarbage()
        collectgarbage()
        print("settled " .. n)
    end
end)

collectgarbage()
print("port " .. listener.port)
