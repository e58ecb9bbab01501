-- luna-bench: a luna.cluster node that loads services through a luna.router
-- (W3.trace, W5.routed, W9).
-- args: router_port my_id kind group targets inflight warmup_ms duration_ms phases [trace]
--   kind "forward": keeps `inflight` messages ("echo", i, "hello") going to
--       the services of `group`, which answer with node.forward_target back
--       here; one more is sent per answer. `phases` is a comma-separated list
--       of modes run one after the other on the same processes:
--         hash:   node.forward_hash(group, i, ...)            (key % count)
--         target: node.forward_target(group.(i % targets + 1), ...)
--       For each phase: warmup_ms, then answers are counted for duration_ms;
--       prints "result <mode> <answers/s> <answers> <elapsed_ns>".
--   kind "rpc": `inflight` coroutines call node.call_target(group.(i % targets + 1),
--       "call_echo", i, "hello") in a loop; prints "result rpc <calls/s> <calls> <ns>".
--   trace "1": require("luna.rpc").tracing = true, so that every forward and
--       call of this node starts a trace id (and the services' answers, sent
--       while handling a traced message, carry it back).
-- After the last phase it sends no more and quits once every message or
-- call in flight was answered (an answer to a client that is gone would
-- fail at the router).
local cluster = require("luna.cluster")
local rpc = require("luna.rpc")
local args = luna.args
local port = assert(tonumber(args[1]), "router port")
local my_id = assert(tonumber(args[2]), "my id")
local kind = args[3]
local group = assert(tonumber(args[4]), "group")
local targets = assert(tonumber(args[5]), "targets")
local inflight = assert(tonumber(args[6]), "inflight")
local warmup_ms = assert(tonumber(args[7]), "warmup_ms")
local duration_ms = assert(tonumber(args[8]), "duration_ms")
local phases = {}
for mode in (args[9] or "hash"):gmatch("[^,]+") do phases[#phases + 1] = mode end
rpc.tracing = args[10] == "1"

local service_id, now_ns = luna.service_id, luna.get_time_ns
local count, bad, failed, started = 0, 0, false, false
local next_i = 0
local running, busy = true, 0 -- busy: messages in flight, or callers still calling
local send, send_of, start

local function check(what, n, err)
    if not n and not failed then
        failed = true
        print("error " .. what .. " returned " .. tostring(err))
    end
end

-- Runs the phases in order: warmup, then counts for duration; quits after the last.
local function run_phases(at)
    local mode = phases[at]
    if not mode then
        running = false
        if busy == 0 then luna_quit_flag = true end
        return
    end
    if kind ~= "rpc" then send = send_of[mode] or error("unknown mode " .. tostring(mode)) end
    luna.timer(warmup_ms, function()
        local c0, t0 = count, now_ns()
        luna.timer(duration_ms, function()
            local elapsed = now_ns() - t0
            local n = count - c0
            if bad > 0 then print("error " .. bad .. " answers had unexpected contents") end
            print(string.format("result %s %.1f %d %d", mode, n * 1e9 / elapsed, n, elapsed))
            run_phases(at + 1)
        end)
    end)
end

local function on_call(msg, i, payload)
    if msg == "echo" then
        count = count + 1
        if payload ~= "hello" then bad = bad + 1 end
        if running then
            next_i = next_i + 1
            send(next_i)
        else
            busy = busy - 1
            if busy == 0 then luna_quit_flag = true end
        end
    else
        print("error unexpected message " .. tostring(msg))
    end
end

node = cluster.start{
    id = my_id, routers = { "127.0.0.1:" .. port }, on_call = on_call,
    on_forward_error = function(err, mode, target)
        print("error forward " .. tostring(err) .. " " .. tostring(mode) .. " " .. tostring(target))
    end,
    on_router_change = function(stream)
        if not stream or started then return end
        started = true
        luna.go(start)
    end,
}
local forward_hash, forward_target = node.forward_hash, node.forward_target

send_of = {
    hash = function(i) check("forward_hash", forward_hash(group, i, "echo", i, "hello")) end,
    target = function(i) check("forward_target", forward_target(service_id(group, i % targets + 1), "echo", i, "hello")) end,
}

-- One caller of kind "rpc".
local function caller(first)
    local i = first
    while running do
        local got, payload = node.call_target(service_id(group, i % targets + 1), "call_echo", i, "hello")
        if got ~= i or payload ~= "hello" then
            print("error call " .. i .. " returned " .. tostring(got) .. " " .. tostring(payload))
            luna_quit_flag = true
            return
        end
        count = count + 1
        i = i + inflight
    end
    busy = busy - 1
    if busy == 0 then luna_quit_flag = true end
end

function start()
    if kind == "rpc" then
        busy = inflight
        for c = 1, inflight do luna.go(caller, c) end
    else
        send = send_of[phases[1]] or error("unknown mode " .. tostring(phases[1]))
        busy = inflight
        for _ = 1, inflight do
            next_i = next_i + 1
            send(next_i)
        end
    end
    run_phases(1)
end
