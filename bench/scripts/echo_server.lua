-- luna-bench: echo server (W1, W2). Replies to every message with the same arguments.
-- Prints "port <n>" once listening on an ephemeral port of 127.0.0.1.
-- The links are secured as bench/scripts/common.lua says (plain by default).
local common = import("common.lua")
mgr = luna.create_socket_mgr(1024)
streams = {}

listener = assert(mgr.listen("127.0.0.1", 0, common.listen_options()))
listener.on_accept = function(stream)
    streams[stream.token] = stream
    local call = stream.call
    stream.on_call = function(msg, i, payload)
        call(msg, i, payload)
    end
    stream.on_error = function(err)
        streams[stream.token] = nil
    end
end

print("port " .. listener.port)
