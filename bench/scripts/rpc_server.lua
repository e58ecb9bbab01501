-- luna-bench: RPC server (W5). Answers rpc calls of "echo" with its arguments.
-- Prints "port <n>" once listening on an ephemeral port of 127.0.0.1.
local rpc = require("luna.rpc")
mgr = luna.create_socket_mgr(1024)
streams = {}
handlers = { echo = function(i, payload) return i, payload end }

listener = assert(mgr.listen("127.0.0.1", 0))
listener.on_accept = function(stream)
    streams[stream.token] = stream
    rpc.serve(stream, handlers)
    stream.on_error = function() streams[stream.token] = nil end
end

print("port " .. listener.port)
