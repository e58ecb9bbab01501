-- The README's Sockets example, with nothing referencing the listener or the
-- accepted stream, while the script forces full garbage collections: both
-- must keep working (README "Sockets"). Prints `listening <port>`, then
-- `collected <n>` after every 10th collection.
local mgr = luna.create_socket_mgr(100)
do
    local listener = assert(mgr.listen("127.0.0.1", 0))
    listener.on_accept = function(stream)
        stream.on_call = function(msg, ...)          -- every message: its argument list
            stream.call("reply", msg, ...)           -- queued, written at the end of the pass
        end
        stream.on_error = function(err) print("stream error " .. err) end
    end
    print("listening " .. listener.port)
end

local collections = 0
luna.interval(20, function()
    collectgarbage("collect")
    collections = collections + 1
    if collections % 10 == 0 then print("collected " .. collections) end
end)
