-- luna-bench: broadcast sender (W4).
-- args: router_port my_id group services window warmup_ms duration_ms
-- Sends stream.forward_broadcast(group, "echo", i, "hello") keeping at most
-- `window` messages beyond the slowest service's last ack. Broadcasts
-- ("mark", 1) after warmup_ms and ("mark", 2) duration_ms later (services
-- report between the marks), prints "sent <n>" and quits shortly after.
local args = luna.args
local port = assert(tonumber(args[1]), "router port")
local my_id = assert(tonumber(args[2]), "my id")
local group = assert(tonumber(args[3]), "group")
local services = assert(tonumber(args[4]), "services")
local window = assert(tonumber(args[5]), "window")
local warmup_ms = assert(tonumber(args[6]), "warmup_ms")
local duration_ms = assert(tonumber(args[7]), "duration_ms")

mgr = luna.create_socket_mgr(16)
stream = assert(mgr.connect("127.0.0.1", port, 5000))
local s = stream
local broadcast = s.forward_broadcast
local acked = {}
for k = 1, services do acked[k] = 0 end
local sent, failed, stopped = 0, false, false

local function fill()
    if stopped then return end
    local low = acked[1]
    for k = 2, services do
        if acked[k] < low then low = acked[k] end
    end
    while sent - low < window do
        sent = sent + 1
        local n, err = broadcast(group, "echo", sent, "hello")
        if not n and not failed then
            failed = true
            print("error forward_broadcast returned " .. tostring(err))
        end
    end
end

s.on_connect = function(result)
    if result ~= "ok" then
        print("error connect: " .. tostring(result))
        luna_quit_flag = true
        return
    end
    s.call("register", my_id)
end

s.on_call = function(msg, index, count)
    if msg == "ack" then
        acked[index] = count
        fill()
    elseif msg == "registered" then
        fill()
        luna.timer(warmup_ms, function()
            broadcast(group, "mark", 1)
            luna.timer(duration_ms, function()
                broadcast(group, "mark", 2)
                stopped = true
                print("sent " .. sent)
                luna.timer(200, function() luna_quit_flag = true end)
            end)
        end)
    else
        print("error unexpected message " .. tostring(msg))
    end
end

import("common.lua").report_errors(s)
