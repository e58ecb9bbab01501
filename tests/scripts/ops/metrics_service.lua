-- A service with script metrics of every kind, for tests/ops.rs.
local rpc = require("luna.rpc") -- loaded: the RPC counters are exported too
mgr = luna.create_socket_mgr(8) -- the script's own manager: mgr="1"
listener = assert(mgr.listen("127.0.0.1", 0))

local jobs = luna.metrics.counter("jobs_total", "Jobs done, by kind", { "kind" })
local depth = luna.metrics.gauge("queue_depth", "Jobs waiting")
local latency = luna.metrics.histogram("job_seconds", "Job time\nin seconds, \\ included", { 0.1, 1, 10 }, { "kind" })
local plain = luna.metrics.counter("restarts", "Counted without labels")
local computed = luna.metrics.gauge("answer", "Read at each scrape")
computed.set_function(function() return 42 end)

function on_start()
    -- Registering again (as a hot reload does) returns the same metric.
    assert(luna.metrics.counter("jobs_total", "Jobs done, by kind", { "kind" }) == jobs)
    local ok, err = pcall(luna.metrics.gauge, "jobs_total", "a gauge now")
    assert(not ok and err:find("already registered as a counter"), err)
    ok, err = pcall(luna.metrics.counter, "bad name", "x")
    assert(not ok and err:find("invalid metric name"), err)
    ok, err = pcall(luna.metrics.counter, "luna_mine", "x")
    assert(not ok and err:find("reserved"), err)
    ok, err = pcall(jobs.inc, 1, { colour = "red" })
    assert(not ok and err:find("label 'kind' is missing"), err)

    jobs.inc({ kind = "mail" })
    jobs.inc(2, { kind = "mail" })
    jobs.inc(1, { 'say "hi"\\\n' }) -- by position; a value that needs escaping
    depth.set(7)
    depth.dec(2)
    latency.observe(0.05, { kind = "mail" })
    latency.observe(0.5, { kind = "mail" })
    latency.observe(50, { kind = "mail" })
    plain.inc()
    print("ready")
end
