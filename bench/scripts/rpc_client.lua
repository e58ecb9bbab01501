-- luna-bench: RPC load generator (W5).
-- args: port coroutines warmup_ms duration_ms
-- Each coroutine calls rpc.call(stream, "echo", i, "hello") in a loop and
-- checks the answer; completed calls are counted during duration_ms after
-- warmup_ms, then "result <calls/s> <calls> <elapsed_ns>" is printed.
local rpc = require("luna.rpc")
local args = luna.args
local port = assert(tonumber(args[1]), "port")
local coroutines = assert(tonumber(args[2]), "coroutines")
local warmup_ms = assert(tonumber(args[3]), "warmup_ms")
local duration_ms = assert(tonumber(args[4]), "duration_ms")

mgr = luna.create_socket_mgr(16)
stream = assert(mgr.connect("127.0.0.1", port, 5000))
local call = rpc.call
local count, running = 0, true

local function worker(first)
    local i = first
    while running do
        local got, payload = call(stream, "echo", i, "hello")
        if got ~= i or payload ~= "hello" then
            print("error call " .. i .. " returned " .. tostring(got) .. " " .. tostring(payload))
            running = false
            luna_quit_flag = true
            return
        end
        count = count + 1
        i = i + coroutines
    end
end

stream.on_connect = function(result)
    if result ~= "ok" then
        print("error connect: " .. tostring(result))
        luna_quit_flag = true
        return
    end
    for c = 1, coroutines do luna.go(worker, c) end
    luna.timer(warmup_ms, function()
        local c0, t0 = count, luna.get_time_ns()
        luna.timer(duration_ms, function()
            local elapsed = luna.get_time_ns() - t0
            local n = count - c0
            running = false
            print(string.format("result %.1f %d %d", n * 1e9 / elapsed, n, elapsed))
            luna_quit_flag = true
        end)
    end)
end
