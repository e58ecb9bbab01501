-- Each error names its cause: the OS reason, the parameter, the argument position.
local mgr = luna.create_socket_mgr(10)
local rpc = require("luna.rpc")
local pending = 3 -- asynchronous results still to come
local function done()
    pending = pending - 1
    if pending == 0 then luna_quit_flag = true end
end

-- A port nobody listens on: connect-failed with the system's reason.
local probe = assert(mgr.listen("127.0.0.1", 0))
local closed_port = probe.port
probe.close()
local refused = mgr.connect("127.0.0.1", closed_port, 2000)
refused.on_connect = function(result, detail) print("refused " .. result .. " | " .. tostring(detail)); done() end

-- A name that does not resolve: addr-error with the resolver's reason.
local unknown = mgr.connect("no-such-host.invalid", 80, 2000)
unknown.on_connect = function(result, detail) print("unresolved " .. result .. " | " .. tostring(detail)); done() end

-- invalid-param says which parameter.
local _, err, detail = mgr.connect(42, "x", 1000)
print("bad connect " .. tostring(err) .. " | " .. tostring(detail))
_, err, detail = mgr.listen("127.0.0.1", 70000)
print("bad listen " .. tostring(err) .. " | " .. tostring(detail))
_, err, detail = luna.service_id(300, 1)
print("bad id " .. tostring(err) .. " | " .. tostring(detail))

-- A listener that cannot be opened says why (and is logged).
_, err, detail = mgr.listen("203.0.113.7", 1)
print("unbindable " .. tostring(err) .. " | " .. tostring(detail))

-- An unsendable argument is counted from the user's call.
local server = assert(mgr.listen("127.0.0.1", 0))
server.on_accept = function(stream) rpc.serve(stream, { add = function(a, b) return a + b end }) end
local client = mgr.connect("127.0.0.1", server.port, 2000)
client.on_connect = function()
    luna.go(function()
        local result, call_err = rpc.call(client, "add", print)
        print("rpc " .. tostring(result) .. " | " .. tostring(call_err))
        done()
    end)
end
