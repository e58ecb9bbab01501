-- `luna direct_client.lua <port>`: luna.rpc calls on a plain stream, in
-- callback style, in a coroutine, outside one, and one whose callee dies.
local rpc = require("luna.rpc")
local mgr = luna.create_socket_mgr(10)
stream = mgr.connect("127.0.0.1", tonumber(luna.args[1]), 2000)
stream.on_connect = function()
    rpc.async(rpc.call, function(sum, err) print("callback " .. tostring(sum) .. " " .. tostring(err)) end, stream, "add", 2, 3)
    stream.call("hello", "world") -- plain one-way messages still work
    luna.go(function()
        print("direct " .. tostring(rpc.call(stream, "add", 40, 2)))
        local ok, err = pcall(rpc.call, stream, "add", print)
        print("unsendable " .. tostring(ok))
        print("calling")
        local t0 = luna.get_time_ms()
        local r, e = rpc.timeout(20000).call(stream, "hang")
        print("lost " .. tostring(r) .. " " .. tostring(e) .. " fast=" .. tostring(luna.get_time_ms() - t0 < 5000))
    end)
    local ok, err = pcall(rpc.call, stream, "add", 1, 1)
    print("outside coroutine " .. tostring(ok) .. " " .. tostring(err:match("inside a coroutine") ~= nil))
end
