-- A listener and a slow interval, nothing else: an idle process.
local mgr = luna.create_socket_mgr(10)
listener = mgr.listen("127.0.0.1", 0)
luna.interval(500, function() end)
function on_start() print("ready") end
