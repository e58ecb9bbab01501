-- `luna direct_server.lua`: luna.rpc served on plain streams; prints
-- `port <n>`, `plain message ...` for one-way messages and `hanging` when
-- the handler that never answers starts.
local rpc = require("luna.rpc")
local mgr = luna.create_socket_mgr(10)
listener = mgr.listen("127.0.0.1", 0)
handlers = {
    add = function(a, b) return a + b end,
    hang = function()
        print("hanging")
        luna.sleep(60000)
    end,
}
listener.on_accept = function(stream)
    held = stream
    rpc.serve(stream, handlers, function(msg, ...) print("plain message", msg, ...) end)
end
print("port " .. listener.port)
