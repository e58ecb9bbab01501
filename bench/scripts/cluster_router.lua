-- luna-bench: luna.router (the shipped router, runtime_lua/router.lua) with
-- the counters the bench reads (W3.trace, W4.publish, W5.routed, W9).
-- args: port heartbeat_ms [settle]
--   port 0 picks a free port; the bench restarts a router on the port the
--   first one printed (W9 re-registration).
-- Prints "port <n>", then "ids <n> <ms since start>" whenever the number of
-- registered ids changed (checked every 2 ms until it has not changed for
-- 200 ms, then every 100 ms, so that a steady router is not disturbed), and
-- "forward_failed <n>" whenever that counter grows. With `settle`, once the
-- ids and links have not changed for 100 ms it runs a full GC and prints
-- "settled <ids> <open streams> <Lua KiB>" (the memory figure of W9).
local t0 = luna.get_time_ns()
local port = assert(math.tointeger(tonumber(luna.args[1])), "port")
local heartbeat_ms = assert(math.tointeger(tonumber(luna.args[2])), "heartbeat_ms")
local settle = luna.args[3] == "settle"

router = require("luna.router").start{ listen = { "127.0.0.1:" .. port }, heartbeat_ms = heartbeat_ms }
local mgr, owners = router.mgr, router.owners
print("port " .. router.listeners[1].port)

local FAST_MS, SLOW_MS, STEADY_MS = 2, 100, 200
local last_ids, last_open, failed = -1, -1, 0
local steady_ms, settled = 0, false

local function count_ids()
    local n = 0
    for _ in pairs(owners) do n = n + 1 end
    return n
end

local function poll()
    local ids, stats = count_ids(), mgr.stats()
    if ids ~= last_ids or stats.open ~= last_open then
        if ids ~= last_ids then
            print(string.format("ids %d %.1f", ids, (luna.get_time_ns() - t0) / 1e6))
        end
        last_ids, last_open, steady_ms, settled = ids, stats.open, 0, false
    end
    if stats.forward_failed ~= failed then
        failed = stats.forward_failed
        print("forward_failed " .. failed)
    end
    local period = steady_ms < STEADY_MS and FAST_MS or SLOW_MS
    if settle and not settled and steady_ms >= 100 then
        settled = true
        collectgarbage()
        collectgarbage()
        print(string.format("settled %d %d %.1f", ids, stats.open, collectgarbage("count")))
    end
    steady_ms = steady_ms + period
    luna.timer(period, poll)
end
poll()
