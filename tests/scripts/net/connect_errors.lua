-- `luna connect_errors.lua <refused port> <full port>`: each way a connect
-- fails, printed as `<case> <error>` (or `<case> immediate <error>`).
local mgr = luna.create_socket_mgr(10)
local refused, full = tonumber(luna.args[1]), tonumber(luna.args[2])
streams = {}
-- Quits once every asynchronous case reported (no deadline of its own: a
-- slow resolver only makes it later; tests/net.rs has the deadline).
local waiting = { refused = true, unresolvable = true, timeout = true, seed = true }
local function reported(name)
    waiting[name] = nil
    if next(waiting) == nil then luna_quit_flag = true end
end
local function try(name, host, port, timeout)
    local s, err = mgr.connect(host, port, timeout)
    if not s then print(name .. " immediate " .. err) return end
    streams[name] = s
    s.on_connect = function(result) print(name .. " " .. result); reported(name) end
end
try("refused", "127.0.0.1", refused, 2000)
try("unresolvable", "no-such-host.invalid", 80, 5000)
try("timeout", "127.0.0.1", full, 300)
try("badport", "127.0.0.1", 70000, 100)
try("badhost", 42, 80, 100)
-- The seed spelling: on_error reports the failure when on_connect is absent.
local s = mgr.connect("127.0.0.1", refused, 2000)
streams.seed = s
s.on_error = function(err) print("seed on_error " .. err); reported("seed") end
