-- An echo server of tests/net.rs and tests/decoder_attacks.rs:
-- `luna echo_server.lua [max_fd]` prints `port <n>`, echoes every message
-- back as ("echo", msg, ...) and prints `error <err>` when a stream closes
-- (and `last words <bytes>` for that message of close_flushes.lua).
-- The message "quit" stops it.
local mgr = luna.create_socket_mgr(tonumber(luna.args[1]) or 2000)
listener = assert(mgr.listen("127.0.0.1", 0))
streams = {}
local accepted = 0
listener.on_accept = function(stream)
    accepted = accepted + 1
    streams[stream.token] = stream
    stream.on_call = function(msg, ...)
        if msg == "quit" then luna_quit_flag = true return end
        if msg == "last words" then print("last words " .. #(...)) end -- close_flushes.lua's 1 MB
        local n, err = stream.call("echo", msg, ...)
        if not n then print("reply failed " .. err) end
    end
    stream.on_error = function(err)
        print("error " .. err)
        streams[stream.token] = nil
    end
end
function on_start() print("port " .. listener.port) end
