-- luna-bench: fan-out sender, a luna.cluster node (W4.publish, W9.broadcast).
-- args: router_port my_id mode group procs window warmup_ms duration_ms
--   mode "broadcast": node.forward_broadcast(group, "b", seq)
--   mode "publish":   node.publish("fan", "b", seq) (the services subscribed to "fan")
-- Keeps at most `window` messages beyond the lowest seq the `procs` service
-- processes acknowledged (("ack", proc_index, seq) from cluster_service.lua).
-- Sends ("mark", 1) the same way after warmup_ms and ("mark", 2) duration_ms
-- later (the services count between the marks); once every process
-- acknowledged the last message (so that no ack is sent to a sender that is
-- gone) prints "sent <n>" and quits.
local cluster = require("luna.cluster")
local args = luna.args
local port = assert(tonumber(args[1]), "router port")
local my_id = assert(tonumber(args[2]), "my id")
local mode = args[3]
local group = assert(tonumber(args[4]), "group")
local procs = assert(tonumber(args[5]), "procs")
local window = assert(tonumber(args[6]), "window")
local warmup_ms = assert(tonumber(args[7]), "warmup_ms")
local duration_ms = assert(tonumber(args[8]), "duration_ms")

local acked = {}
for p = 1, procs do acked[p] = 0 end
local low, sent, failed, stopped, started, done = 0, 0, false, false, false, false
local send

local function fill()
    if stopped then
        if low == sent and not done then
            done = true
            print("sent " .. sent)
            luna_quit_flag = true
        end
        return
    end
    while sent - low < window do
        sent = sent + 1
        local n, err = send("b", sent)
        if not n and not failed then
            failed = true
            print("error " .. mode .. " returned " .. tostring(err))
        end
    end
end

local function on_call(msg, p, seq)
    if msg ~= "ack" then
        print("error unexpected message " .. tostring(msg))
        return
    end
    local was = acked[p]
    acked[p] = seq
    if was == low then
        low = math.huge
        for q = 1, procs do
            if acked[q] < low then low = acked[q] end
        end
        fill()
    end
end

local function start()
    fill()
    luna.timer(warmup_ms, function()
        send("mark", 1)
        luna.timer(duration_ms, function()
            send("mark", 2)
            stopped = true
            fill()
        end)
    end)
end

node = cluster.start{
    id = my_id, routers = { "127.0.0.1:" .. port }, on_call = on_call,
    on_forward_error = function(err, how, target)
        print("error forward " .. tostring(err) .. " " .. tostring(how) .. " " .. tostring(target))
    end,
    on_router_change = function(stream)
        if not stream or started then return end
        started = true
        start()
    end,
}
if mode == "publish" then
    local publish = node.publish
    send = function(...) return publish("fan", ...) end
elseif mode == "broadcast" then
    local broadcast = node.forward_broadcast
    send = function(...) return broadcast(group, ...) end
else
    error("unknown mode " .. tostring(mode))
end
