-- `luna unreferenced.lua <port>`: a stream and a listener that nothing
-- references survive full garbage collections and keep their callbacks.
local mgr = luna.create_socket_mgr(10)
do
    -- A ping-pong whose only references are the stream's own fields.
    local dropped = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
    dropped.on_connect = function() print("dropped connected"); dropped.call("n", 1) end
    dropped.on_call = function(echo, msg, n) pongs = n; dropped.call("n", n + 1) end
end
luna.timer(300, function()
    collectgarbage()
    collectgarbage()
    before = pongs
    luna.timer(200, function() print("still flowing " .. tostring(pongs > before)) end)
end)
do
    local l = mgr.listen("127.0.0.1", 0)
    l.on_accept = function(stream)
        stream.on_call = function(msg) print("accepted got " .. msg) end
    end
    lport = l.port
end
luna.timer(800, function()
    collectgarbage()
    collectgarbage()
    local probe = mgr.connect("127.0.0.1", lport, 1000)
    keep = probe
    probe.on_connect = function(r) print("probe " .. r); probe.call("hello") end
end)
