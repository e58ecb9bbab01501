-- luna-bench: load generator (W1, W2, W3).
-- args: port inflight warmup_ms duration_ms mode [my_id group]
--   mode "call": stream.call("echo", i, "hello") to an echo server;
--   mode "hash": register my_id with the router, then
--                stream.forward_hash(group, i, "echo", i, "hello").
-- Keeps `inflight` messages outstanding (sends one per reply), counts
-- replies during duration_ms after warmup_ms and prints
-- "result <replies/s> <replies> <elapsed_ns>", then quits.
local args = luna.args
local port = assert(tonumber(args[1]), "port")
local inflight = assert(tonumber(args[2]), "inflight")
local warmup_ms = assert(tonumber(args[3]), "warmup_ms")
local duration_ms = assert(tonumber(args[4]), "duration_ms")
local mode = args[5] or "call"
local my_id = tonumber(args[6] or "0")
local group = tonumber(args[7] or "0")

local common = import("common.lua")
mgr = luna.create_socket_mgr(16)
stream = assert(mgr.connect("127.0.0.1", port, 5000, common.connect_options()))
local s = stream
local call, forward_hash = s.call, s.forward_hash
local count, bad, failed = 0, 0, false
local next_i = 0

local send
if mode == "hash" then
    send = function(i)
        local n, err = forward_hash(group, i, "echo", i, "hello")
        if not n and not failed then
            failed = true
            print("error forward_hash returned " .. tostring(err))
        end
    end
else
    send = function(i)
        local n, err = call("echo", i, "hello")
        if not n and not failed then
            failed = true
            print("error call returned " .. tostring(err))
        end
    end
end

local function start()
    for _ = 1, inflight do
        next_i = next_i + 1
        send(next_i)
    end
    luna.timer(warmup_ms, function()
        local c0, t0 = count, luna.get_time_ns()
        luna.timer(duration_ms, function()
            local elapsed = luna.get_time_ns() - t0
            local n = count - c0
            if bad > 0 then print("error " .. bad .. " replies had unexpected contents") end
            print(string.format("result %.1f %d %d", n * 1e9 / elapsed, n, elapsed))
            luna_quit_flag = true
        end)
    end)
end

s.on_connect = function(result)
    if result ~= "ok" then
        print("error connect: " .. tostring(result))
        luna_quit_flag = true
    elseif mode == "hash" then
        s.call("register", my_id)
    else
        start()
    end
end

s.on_call = function(msg, i, payload)
    if msg == "echo" then
        count = count + 1
        if payload ~= "hello" then bad = bad + 1 end
        next_i = next_i + 1
        send(next_i)
    elseif msg == "registered" then
        start()
    else
        print("error unexpected message " .. tostring(msg))
    end
end

common.report_errors(s)
