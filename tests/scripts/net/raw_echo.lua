-- Raw streams both ways: a raw listener echoes bytes, a raw connection sends
-- and reads them (`on_data`/`write`), without luna framing.
local mgr = luna.create_socket_mgr(10)
local listener = assert(mgr.listen("127.0.0.1", 0, { framing = "raw" }))
listener.on_accept = function(stream)
    stream.on_data = function(bytes) stream.write("echo:" .. bytes) end
end
local client = assert(mgr.connect("127.0.0.1", listener.port, 2000, { framing = "raw" }))
print("raw client has write " .. tostring(client.write ~= nil) .. ", call " .. tostring(client.call ~= nil))
client.on_connect = function(result)
    print("connect " .. result)
    client.write("hello\r\n")
end
local received = ""
client.on_data = function(bytes)
    received = received .. bytes
    if received == "echo:hello\r\n" then
        print("raw round trip ok")
        luna_quit_flag = true
    end
end
local _, err, detail = mgr.listen("127.0.0.1", 0, { framing = "udp" })
print("bad framing " .. tostring(err) .. " | " .. tostring(detail))
