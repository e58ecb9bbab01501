-- A load client of the fault-injection tests (tests/faults.rs): a node that
-- keeps calling (or forwarding to) a service and accounts for every message.
--   ID=9.1 ROUTERS=ip:port,... [REDIS_PORT=..] MODE=target|random|hash|forward
--   TARGET=2.1 (a service id; a group for random and hash) METHOD=whoami [ARG=..]
--   EVERY_MS=10 BATCH=1 TIMEOUT_MS=3000 [COUNT=n] [STOP_FILE=path] [LIVE=1]
-- Once LIVE routers are live and a probe call answers, prints `ready`, then
-- every EVERY_MS starts BATCH calls (each in its own coroutine) or sends
-- BATCH one-way `fwd` forwards. Each call prints `ok <seq> <result>` or
-- `err <seq> <error>`; a forward prints `err <seq> <error>` when it is
-- refused or reported back. After COUNT messages, or once STOP_FILE exists,
-- it stops, waits for every call to return (and 500 ms for late reports),
-- and prints `summary sent=N delivered=N reported=N errors=err=n,...`
-- (forwards are delivered to the service, which counts them).
local common = import("common.lua")

local mode = common.env("MODE", "target")
local target = common.env("TARGET", "2.1")
local group = (mode == "random" or mode == "hash") and tonumber(target) or nil
local method = common.env("METHOD", "whoami")
local arg = common.env("ARG")
arg = tonumber(arg) or arg
local every, batch = common.num("EVERY_MS", 10), common.num("BATCH", 1)
local timeout = common.num("TIMEOUT_MS", 3000)
local limit = common.num("COUNT")
local stop_file = common.env("STOP_FILE")

sent, delivered, reported, pending = 0, 0, 0, 0
errors = {}
local stopping, stop_at, finished = false, 0, false

local function report(seq, err)
    reported = reported + 1
    err = tostring(err)
    errors[err] = (errors[err] or 0) + 1
    print("err " .. tostring(seq) .. " " .. err)
end

node = common.start_node{
    id = common.env("ID", "9.1"),
    on_forward_error = function(err, _, _, _, seq) report(seq, err) end,
}

local function call(view, seq, name, ...)
    if mode == "random" then return view.call_random(group, name, ...) end
    if mode == "hash" then return view.call_hash(group, seq, name, ...) end
    return view.call_target(target, name, ...)
end

local function one(seq)
    if mode == "forward" then
        local ok, err = node.forward_target(target, "fwd", seq)
        if not ok then report(seq, err) end
        return
    end
    pending = pending + 1
    local result, err = call(node.timeout(timeout), seq, method, arg)
    pending = pending - 1
    if result ~= nil then
        delivered = delivered + 1
        print("ok " .. seq .. " " .. tostring(result))
    else
        report(seq, err)
    end
end

local function stop()
    if not stopping then
        stopping, stop_at = true, luna.get_time_ms()
    end
end

local function start()
    print("ready")
    luna.interval(every, function()
        for _ = 1, batch do
            if stopping then return end
            if limit and sent >= limit then return stop() end
            sent = sent + 1
            if mode == "forward" then one(sent) else luna.go(one, sent) end
        end
        if limit and sent >= limit then stop() end
    end)
end

luna.interval(50, function()
    if finished then return end
    if stop_file and not stopping then
        local file = io.open(stop_file)
        if file then
            file:close()
            stop()
        end
    end
    if stopping and pending == 0 and luna.get_time_ms() - stop_at >= 500 then
        finished = true
        local parts = {}
        for err, count in pairs(errors) do parts[#parts + 1] = err .. "=" .. count end
        table.sort(parts)
        print(string.format("summary sent=%d delivered=%d reported=%d errors=%s",
            sent, delivered, reported, table.concat(parts, ",")))
    end
end)

common.watch(node, function()
    -- Probe until the target answers, so that start-up is not counted.
    luna.go(function()
        while true do
            local answer
            if group then
                answer = node.timeout(500).call_random(group, "whoami")
            else
                answer = node.timeout(500).call_target(target, "whoami")
            end
            if answer then break end
            luna.sleep(50)
        end
        start()
    end)
end, function() return sent end)
common.collect_garbage_often()
