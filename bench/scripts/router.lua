-- luna-bench: router (W3, W4). The script only keeps the route table:
-- a peer sends ("register", service_id) once connected; the router calls
-- mgr.route(service_id, stream.token) and answers ("registered", service_id).
-- Forwards are handled by the Rust core without entering Lua.
-- Prints "port <n>"; prints "forward_failed <n>" whenever that counter grows.
-- The links are secured as bench/scripts/common.lua says (plain by default).
local common = import("common.lua")
mgr = luna.create_socket_mgr(1024)
streams = {}

listener = assert(mgr.listen("127.0.0.1", 0, common.listen_options()))
listener.on_accept = function(stream)
    streams[stream.token] = stream
    stream.on_call = function(msg, id)
        if msg == "register" then
            assert(mgr.route(id, stream.token))
            stream.call("registered", id)
        else
            print("error router got a plain message " .. tostring(msg))
        end
    end
    stream.on_error = function(err)
        streams[stream.token] = nil
    end
end

local failed = 0
stats_timer = luna.interval(200, function()
    local stats = mgr.stats()
    if stats.forward_failed ~= failed then
        failed = stats.forward_failed
        print("forward_failed " .. failed)
    end
end)

print("port " .. listener.port)
