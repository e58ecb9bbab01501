-- The echo service of tests/python_client.rs: answers `msg, ...` with
-- `"reply:" .. msg, ...` on the same stream; `register, id` routes service
-- `id` to the calling stream. With ECHO_SECRET set, its listener requires
-- that cluster secret. Prints `port <n>`.
mgr = luna.create_socket_mgr(64)
listener = assert(mgr.listen("127.0.0.1", 0, { secret = os.getenv("ECHO_SECRET") }))
listener.on_accept = function(stream)
    stream.on_call = function(msg, ...)
        if msg == "register" then
            local id = ...
            assert(mgr.route(id, stream.token))
            stream.call("registered", id)
        else
            assert(stream.call("reply:" .. msg, ...))
        end
    end
end
print("port " .. listener.port)
