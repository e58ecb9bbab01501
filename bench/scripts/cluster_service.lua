-- luna-bench: luna.cluster service nodes behind a luna.router (W3.trace,
-- W4.publish, W5.routed, W9).
-- args: router_port group procs proc_index nodes ids_per_node peer_id backoff_min_ms [subscribe]
-- Process proc_index (1..procs) runs `nodes` cluster nodes on one socket
-- manager, each holding `ids_per_node` ids of `group`. The ids of all the
-- processes are 1..procs*nodes*ids_per_node, dealt out in turn (id 1 to
-- process 1, id 2 to process 2...), so consecutive hash keys and targets
-- go to different processes whatever the layout. Every node:
--   ("echo", i, p)     answers node.forward_target(peer_id, "echo", i, p)
--                      through its own link (W3.trace, W9 forwards);
--   handlers.call_echo answers luna.rpc calls with its arguments (W5.routed);
--   ("b", seq)         a fan-out message (forward_broadcast, or node.publish
--                      on topic "fan" with `subscribe`): counted. Every
--                      max(100, 4 * nodes) deliveries (and every 5 ms) the
--                      process sends ("ack", proc_index, lowest seq seen by
--                      any of its nodes) to peer_id: the sender's flow control;
--   ("mark", 1 | 2)    per node, the count and time at the marks; once every
--                      node saw mark 2, prints "result <deliveries/s summed
--                      over the nodes> <deliveries>", acknowledges the last
--                      seq and is ready for the next sender.
-- Prints "ready" once every node is live (registered); links reconnect
-- after a router restart with backoff_min_ms (and luna.cluster's jitter).
local cluster = require("luna.cluster")
local args = luna.args
local port = assert(tonumber(args[1]), "router port")
local group = assert(tonumber(args[2]), "group")
local procs = assert(tonumber(args[3]), "procs")
local proc_index = assert(tonumber(args[4]), "proc index")
local node_count = assert(tonumber(args[5]), "nodes")
local ids_per_node = assert(tonumber(args[6]), "ids per node")
local peer_id = assert(tonumber(args[7]), "peer id")
local backoff_min_ms = assert(tonumber(args[8]), "backoff_min_ms")
local subscribe = args[9] == "subscribe"

mgr = luna.create_socket_mgr(node_count + 64)
nodes = {}
local routers = { "127.0.0.1:" .. port }
local now_ns = luna.get_time_ns
local count, last_seq, c0, t0 = {}, {}, {}, {}
local rates, marked, total = 0, 0, 0
local live, ready_printed = 0, false

handlers = { call_echo = function(i, p) return i, p end }

-- The lowest seq any node has seen, sent to the sender when it moved.
local acked, since_ack, ack_timer = -1, 0, nil
local ACK_EVERY = math.max(100, node_count * 4)
local function send_ack()
    since_ack = 0
    local low = math.huge
    for q = 1, node_count do
        if last_seq[q] < low then low = last_seq[q] end
    end
    if low ~= acked then
        acked = low
        nodes[1].forward_target(peer_id, "ack", proc_index, low)
    end
end

local function fan_message(k, seq)
    count[k] = count[k] + 1
    if seq > last_seq[k] then last_seq[k] = seq end
    since_ack = since_ack + 1
    if since_ack >= ACK_EVERY then
        send_ack()
    elseif not ack_timer then
        ack_timer = luna.interval(5, send_ack) -- the tail of a run, below ACK_EVERY
    end
end

local function on_mark(k, which)
    if which == 1 then
        c0[k], t0[k] = count[k], now_ns()
        return
    end
    local n = count[k] - c0[k]
    rates, total, marked = rates + n * 1e9 / (now_ns() - t0[k]), total + n, marked + 1
    if marked < node_count then return end
    send_ack() -- every node has seen everything before the mark: the sender may quit
    print(string.format("result %.1f %d", rates, total))
    -- Ready for the next sender, which counts from 1 again.
    rates, total, marked, acked, since_ack = 0, 0, 0, -1, 0
    for q = 1, node_count do last_seq[q] = 0 end
    if ack_timer then ack_timer.cancel() end
    ack_timer = nil
end

for k = 1, node_count do
    count[k], last_seq[k] = 0, 0
    local ids = {}
    local nth = (k - 1) * procs + proc_index -- this node among all of them, 1-based
    for j = 1, ids_per_node do
        ids[j] = luna.service_id(group, (j - 1) * procs * node_count + nth)
    end
    local node
    local function on_call(msg, a, b)
        if msg == "echo" then
            node.forward_target(peer_id, msg, a, b)
        elseif msg == "b" then
            fan_message(k, a)
        elseif msg == "mark" then
            on_mark(k, a)
        else
            print("error unexpected message " .. tostring(msg))
        end
    end
    local was_live = false
    node = cluster.start{
        ids = ids, routers = routers, mgr = mgr, handlers = handlers, on_call = on_call,
        backoff_min_ms = backoff_min_ms,
        on_forward_error = function(err, mode, target)
            print("error forward " .. tostring(err) .. " " .. tostring(mode) .. " " .. tostring(target))
        end,
        on_router_change = function(stream)
            if stream and not was_live then
                was_live = true
                live = live + 1
                if live == node_count and not ready_printed then
                    ready_printed = true
                    print("ready")
                end
            end
        end,
    }
    if subscribe then
        node.subscribe("fan", function(msg, a)
            if msg == "b" then fan_message(k, a) else on_call(msg, a) end
        end)
    end
    nodes[k] = node
end
