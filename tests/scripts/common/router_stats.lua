-- The shipped router (runtime_lua/router.lua, same command line), plus a
-- `stats name=value ...` line on stdout every STATS_EVERY_MS (default 100)
-- with the counters of its socket manager (`nil` for a counter it lacks).
local router_module = require("luna.router")
router = router_module.start(router_module.parse_args(luna.args))

local names = {
    "open", "forwarded", "forward_failed", "tracked_calls", "calls_refused", "recv_buffer_full",
    "frame_timeouts", "ids_refused", "pending_input", "bad_packages",
}
luna.interval(tonumber(os.getenv("STATS_EVERY_MS") or "100"), function()
    local stats = router.mgr.stats()
    local parts = {}
    for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. tostring(stats[name]) end
    print("stats " .. table.concat(parts, " "))
end)
