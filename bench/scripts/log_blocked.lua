-- luna-bench: loop latency while the log pipe is blocked (W10.blocked).
-- args: warmup_ms duration_ms lines_per_ms.
-- Every 1 ms a timer logs `lines_per_ms` info lines (to stderr, which the
-- bench never reads; with --log-level error they are filtered out: the
-- baseline). Every 10 ms another timer measures how late it fires. After
-- warmup_ms + duration_ms prints
-- "result <p50_ms> <p99_ms> <max_ms> <samples> <lines_attempted> <dropped>".
local args = luna.args
local warmup_ms = assert(tonumber(args[1]), "warmup_ms")
local duration_ms = assert(tonumber(args[2]), "duration_ms")
local per_ms = assert(math.tointeger(tonumber(args[3])), "lines_per_ms")
local info, now_ns = luna.log.info, luna.get_time_ns
local PERIOD_MS = 10

local attempted = 0
local late = {}

local function percentile(sorted, q)
    local at = math.max(1, math.ceil(q * #sorted))
    return sorted[at]
end

function on_start()
    luna.interval(1, function()
        for _ = 1, per_ms do
            attempted = attempted + 1
            info("flood line", attempted, "user=42 action=login ok")
        end
    end)
    luna.timer(warmup_ms, function()
        local period_ns = PERIOD_MS * 1000000
        local t0 = now_ns()
        local expected = t0 + period_ns
        local probe
        probe = luna.interval(PERIOD_MS, function()
            local now = now_ns()
            late[#late + 1] = math.max(0, now - expected) / 1e6
            -- The timer keeps its cadence and skips missed periods: so does `expected`.
            expected = expected + period_ns
            if expected <= now then expected = now + period_ns end
            if now - t0 >= duration_ms * 1000000 then
                probe.cancel()
                table.sort(late)
                print(string.format("result %.3f %.3f %.3f %d %d %d", percentile(late, 0.5),
                    percentile(late, 0.99), late[#late], #late, attempted, luna.log.dropped()))
                luna_quit_flag = true
            end
        end)
    end)
end
