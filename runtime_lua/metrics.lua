-- luna.metrics: counters, gauges and histograms for scripts, and the
-- `--metrics HOST:PORT` endpoint that serves them, with luna's own counters
-- (names starting with luna_), at GET /metrics in the Prometheus text
-- format (version 0.0.4). The endpoint is a small HTTP/1.1 server on the
-- process's own loop: raw streams, bounded requests, one response per
-- connection, never blocking.
local luna = luna
local log = luna.log
local format, concat, sort = string.format, table.concat, table.sort
local type, tostring, pairs, ipairs, next, select = type, tostring, pairs, ipairs, next, select
local mtype, huge, floor = math.type, math.huge, math.floor

local M = {}

--- Label combinations one metric keeps; further ones are dropped and counted.
M.max_series = 10000

local MAX_REQUEST = 8192 -- bytes of an HTTP request head
local MAX_CLIENTS = 64 -- scrapers connected at once
local REQUEST_TIMEOUT_MS = 10000 -- a connection idle this long is closed
local DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local registry = {} -- exposed name -> metric
local order = {} -- exposed names, in registration order
local series_dropped = 0 -- label combinations refused past max_series
local requests = {} -- HTTP status -> count

-- Managers the runtime opened for itself, by index: their `mgr` label.
M._manager_roles = {}

------------------------------------------------------------------------
-- Text format

local function escape_label(value)
    return (value:gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- A help text as the format writes it.
local function escape_help(text)
    return (text:gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

-- A sample value as the format writes it.
local function number(value)
    if mtype(value) == "integer" then return tostring(value) end
    if value ~= value then return "NaN" end
    if value == huge then return "+Inf" end
    if value == -huge then return "-Inf" end
    if value == floor(value) and value > -2 ^ 53 and value < 2 ^ 53 then return format("%d", value) end
    local text = format("%.15g", value)
    if tonumber(text) ~= value then text = format("%.17g", value) end
    return text
end

-- A bucket bound: integral bounds as "1.0", as the official clients write them.
local function bound_text(value)
    if value == floor(value) and value > -2 ^ 53 and value < 2 ^ 53 then return format("%.1f", value) end
    return number(value)
end

-- The # HELP and # TYPE lines of a metric.
local function head(out, name, kind, help)
    if help and help ~= "" then out[#out + 1] = "# HELP " .. name .. " " .. escape_help(help) .. "\n" end
    out[#out + 1] = "# TYPE " .. name .. " " .. kind .. "\n"
end

-- One sample line.
local function sample(out, name, labels, value)
    if labels and labels ~= "" then
        out[#out + 1] = name .. "{" .. labels .. "} " .. number(value) .. "\n"
    else
        out[#out + 1] = name .. " " .. number(value) .. "\n"
    end
end

------------------------------------------------------------------------
-- Script metrics

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"

-- The checks of a new metric's arguments raise errors at level 4: the
-- script's call of counter/gauge/histogram, through check_metric.

local function check_name(name, kind)
    if type(name) ~= "string" or not name:match(NAME) then
        error(format("luna.metrics.%s: invalid metric name %s (use letters, digits, _ and :, not starting with a digit)",
            kind, type(name) == "string" and ("'" .. name .. "'") or tostring(name)), 4)
    end
    if name:sub(1, 5) == "luna_" then
        error(format("luna.metrics.%s: metric name '%s' is reserved (luna_ is luna's own prefix)", kind, name), 4)
    end
end

local function check_help(help, kind)
    if help ~= nil and type(help) ~= "string" then
        error(format("luna.metrics.%s: the help text must be a string", kind), 4)
    end
end

-- The label names as a list, checked (unique, valid, no `le` on a histogram).
local function check_labels(names, kind)
    if names == nil then return {} end
    if type(names) ~= "table" then
        error(format("luna.metrics.%s: label names must be a list of strings", kind), 4)
    end
    local seen, list = {}, {}
    for i, label in ipairs(names) do
        if type(label) ~= "string" or not label:match(LABEL) or label:sub(1, 2) == "__" then
            error(format("luna.metrics.%s: invalid label name %s", kind, tostring(label)), 4)
        end
        if kind == "histogram" and label == "le" then
            error(format("luna.metrics.%s: 'le' is the bucket label of a histogram", kind), 4)
        end
        if seen[label] then error(format("luna.metrics.%s: label '%s' given twice", kind, label), 4) end
        seen[label] = true
        list[i] = label
    end
    return list
end

-- Checks the name, help and label names of a new metric of `kind`; returns
-- the label names as a list.
local function check_metric(kind, name, help, label_names)
    check_name(name, kind)
    check_help(help, kind)
    local list = check_labels(label_names, kind) -- not a tail call: it would shift the error level
    return list
end

-- True when two lists hold the same values in the same order.
local function same_list(a, b)
    if #a ~= #b then return false end
    for i = 1, #a do
        if a[i] ~= b[i] then return false end
    end
    return true
end

-- The series key of a sample's labels: `a="x",b="y"` (the text it is written
-- with). Labels are given by name ({ method = "GET" }) or by position ({ "GET" }).
-- Errors are raised at level 3: the script's call of a metric's function.
local function series_key(metric, labels)
    local names = metric.label_names
    if #names == 0 then
        if labels ~= nil and (type(labels) ~= "table" or next(labels) ~= nil) then
            error(format("metric '%s' has no labels", metric.name), 3)
        end
        return ""
    end
    if type(labels) ~= "table" then
        error(format("metric '%s' needs labels: %s", metric.name, concat(names, ", ")), 3)
    end
    local parts = {}
    for i, label in ipairs(names) do
        local value = labels[label]
        if value == nil then value = labels[i] end
        if value == nil then error(format("metric '%s': label '%s' is missing", metric.name, label), 3) end
        parts[i] = label .. '="' .. escape_label(tostring(value)) .. '"'
    end
    for key in pairs(labels) do
        if not (metric.label_set[key] or (mtype(key) == "integer" and key >= 1 and key <= #names)) then
            error(format("metric '%s' has no label '%s'", metric.name, tostring(key)), 3)
        end
    end
    return concat(parts, ",")
end

-- The series of a key, created on first use (nil past max_series: dropped and counted).
local function series_of(metric, key)
    local series = metric.series[key]
    if series then return series end
    if metric.count >= M.max_series then
        series_dropped = series_dropped + 1
        if not metric.warned then
            metric.warned = true
            log.warn(format("metric '%s' has %d label combinations: new ones are dropped (luna_metrics_series_dropped_total)",
                metric.name, metric.count))
        end
        return nil
    end
    series = metric.new_series()
    metric.series[key] = series
    metric.keys[#metric.keys + 1] = key
    metric.count = metric.count + 1
    return series
end

-- Errors at level 3: the script's call of a metric's function.
local function check_number(value, what, name)
    if type(value) ~= "number" then
        error(format("metric '%s': %s must be a number, got %s", name, what, type(value)), 3)
    end
end

-- Registers a metric, or returns the one registered under `name` when a
-- hot reload registers it again alike (an error when it differs).
local function register(kind, name, help, label_names, buckets, make)
    local existing = registry[name]
    if existing then
        if existing.kind ~= kind or not same_list(existing.label_names, label_names)
            or not same_list(existing.buckets or {}, buckets or {}) then
            error(format("luna.metrics.%s: metric '%s' is already registered as a %s with labels (%s)%s",
                kind, name, existing.kind, concat(existing.label_names, ", "),
                existing.buckets and (" and buckets " .. concat(existing.buckets, ", ")) or ""), 3)
        end
        existing.help = help -- a hot reload may reword it
        return existing.object
    end
    local metric = {
        kind = kind, name = name, help = help, label_names = label_names, label_set = {},
        buckets = buckets, series = {}, keys = {}, count = 0,
    }
    for _, label in ipairs(label_names) do metric.label_set[label] = true end
    metric.object = make(metric)
    metric.object.name = name
    registry[name] = metric
    order[#order + 1] = name
    return metric.object
end

-- A series holding one number (counters and gauges).
local function value_series() return { value = 0 } end

-- The arguments of inc/dec: (n[, labels]), (labels) or () mean n = 1.
local function amount(n, labels)
    if type(n) == "table" then return 1, n end
    if n == nil then return 1, labels end
    return n, labels
end

-- The `get` of a counter or gauge: a series' value (0 before its first sample).
local function value_getter(metric)
    return function(labels)
        local series = metric.series[series_key(metric, labels)]
        return series and series.value or 0
    end
end

-- The `inc` (sign 1) or `dec` (sign -1) of a gauge.
local function gauge_adder(metric, sign)
    return function(n, labels)
        n, labels = amount(n, labels)
        check_number(n, "the amount", metric.name)
        local series = series_of(metric, series_key(metric, labels))
        if series then series.value = series.value + sign * n end
    end
end

--- A counter: `c.inc([n][, labels])` adds n (default 1, never negative).
--- Its samples are named `<name>_total` (the suffix is added when missing).
function M.counter(name, help, label_names)
    label_names = check_metric("counter", name, help, label_names)
    if name:sub(-6) ~= "_total" then name = name .. "_total" end
    local registered = register("counter", name, help, label_names, nil, function(metric)
        metric.new_series = value_series
        local object = { get = value_getter(metric) }
        function object.inc(n, labels)
            n, labels = amount(n, labels)
            check_number(n, "the increment", metric.name)
            if n < 0 then error(format("metric '%s': a counter only goes up (got %s)", metric.name, number(n)), 2) end
            local series = series_of(metric, series_key(metric, labels))
            if series then series.value = series.value + n end
        end
        return object
    end)
    return registered -- not a tail call: register's errors name the script's line
end

--- A gauge: `g.set(v[, labels])`, `g.inc([n][, labels])`, `g.dec([n][, labels])`,
--- or `g.set_function(fn)` to read its value (no labels) at each scrape.
function M.gauge(name, help, label_names)
    label_names = check_metric("gauge", name, help, label_names)
    local registered = register("gauge", name, help, label_names, nil, function(metric)
        metric.new_series = value_series
        local object = { get = value_getter(metric), inc = gauge_adder(metric, 1), dec = gauge_adder(metric, -1) }
        function object.set(value, labels)
            check_number(value, "the value", metric.name)
            local series = series_of(metric, series_key(metric, labels))
            if series then series.value = value end
        end
        function object.set_function(fn)
            if fn ~= nil and type(fn) ~= "function" then
                error(format("metric '%s': set_function needs a function (or nil)", metric.name), 2)
            end
            if fn and #metric.label_names > 0 then
                error(format("metric '%s': set_function is for gauges without labels", metric.name), 2)
            end
            metric.read = fn
        end
        return object
    end)
    return registered -- not a tail call: register's errors name the script's line
end

-- The bucket bounds of a histogram (without +Inf), checked; errors at
-- level 3: the script's call of histogram.
local function bucket_bounds(buckets)
    if type(buckets) ~= "table" or #buckets == 0 then
        error("luna.metrics.histogram: buckets must be a list of numbers", 3)
    end
    local bounds = {}
    for i, bound in ipairs(buckets) do
        if type(bound) ~= "number" or bound ~= bound or (i > 1 and bound <= bounds[i - 1]) then
            error("luna.metrics.histogram: buckets must be numbers in increasing order", 3)
        end
        if bound ~= huge then bounds[#bounds + 1] = bound end
    end
    return bounds
end

-- Counts `value` in its bucket of a histogram series.
local function observe(series, bounds, value)
    local n = #bounds
    local at = n + 1
    for i = 1, n do
        if value <= bounds[i] then
            at = i
            break
        end
    end
    series.counts[at] = series.counts[at] + 1
    series.sum = series.sum + value
    series.count = series.count + 1
end

--- A histogram: `h.observe(v[, labels])`; samples `<name>_bucket{le=...}`
--- (cumulative), `<name>_sum` and `<name>_count`. Buckets are upper bounds in
--- increasing order (default 0.005 .. 10); +Inf is always added.
function M.histogram(name, help, buckets, label_names)
    if type(buckets) == "table" and type(buckets[1]) == "string" and label_names == nil then
        buckets, label_names = nil, buckets -- histogram(name, help, label_names)
    end
    label_names = check_metric("histogram", name, help, label_names)
    local bounds = bucket_bounds(buckets == nil and DEFAULT_BUCKETS or buckets)
    local registered = register("histogram", name, help, label_names, bounds, function(metric)
        local n = #bounds
        metric.new_series = function()
            local counts = {}
            for i = 1, n + 1 do counts[i] = 0 end
            return { counts = counts, sum = 0, count = 0 }
        end
        local object = {}
        function object.observe(value, labels)
            check_number(value, "the observed value", metric.name)
            local series = series_of(metric, series_key(metric, labels))
            if series then observe(series, bounds, value) end
        end
        function object.get(labels)
            local series = metric.series[series_key(metric, labels)]
            return series and series.count or 0, series and series.sum or 0
        end
        return object
    end)
    return registered -- not a tail call: register's errors name the script's line
end

------------------------------------------------------------------------
-- Rendering

local SOCKET_COUNTERS = {
    { "forwarded", "Messages forwarded through this manager's route table" },
    { "forward_failed", "Forwards that could not be delivered" },
    { "bad_packages", "Malformed or oversized frames received (the stream was closed)" },
    { "bad_deliveries", "Messages that could not be decoded for a callback" },
    { "refused", "Connections refused (too many open)" },
    { "unhandled", "Messages that found no handler" },
    { "calls_refused", "Tracked calls refused (too many in flight)" },
    { "recv_buffer_full", "Streams closed for holding too much unfinished input" },
    { "frame_timeouts", "Streams closed for a frame that took too long" },
    { "ids_refused", "Service id registrations refused" },
    { "auth_failed", "Links that failed the cluster-secret handshake" },
    { "tls_failed", "Links that failed the TLS handshake" },
}

local SOCKET_GAUGES = {
    { "open", "luna_socket_open", "Open listeners and streams" },
    { "pending_input", "luna_socket_pending_input_bytes", "Bytes of unfinished frames held" },
    { "tracked_calls", "luna_socket_tracked_calls", "Calls through this router being tracked" },
    { "max_fd", "luna_socket_max_fd", "Most listeners and streams this manager may hold" },
}

local RPC_COUNTERS = {
    { "calls", "RPC calls made" },
    { "completed", "RPC calls answered" },
    { "timeouts", "RPC calls that timed out" },
    { "late_replies", "Answers that came after their call timed out (dropped)" },
    { "connection_lost", "RPC calls failed by a lost connection" },
    { "no_route", "RPC calls the router had nowhere to send" },
    { "remote_errors", "RPC calls whose handler raised or did not exist" },
}

--- Bytes of memory the process has resident (VmRSS), or nil where unknown.
function M.resident_bytes(field)
    local file = io.open("/proc/self/status", "r")
    if not file then return nil end
    local text = file:read("a")
    file:close()
    local kib = text and text:match((field or "VmRSS") .. ":%s*(%d+)")
    return kib and tonumber(kib) * 1024 or nil
end

-- The `mgr` label of a socket manager: its role or its number.
local function manager_label(index)
    return 'mgr="' .. escape_label(M._manager_roles[index] or tostring(index)) .. '"'
end

-- The counters of luna.rpc when a script loaded it, else nil (shared with the console).
function M._rpc_stats()
    local rpc = package.loaded["luna.rpc"]
    if type(rpc) == "table" and rpc.stats then return rpc.stats() end
    return nil
end

-- The process: version, uptime, memory, descriptors, timers, dropped log lines.
local function render_process(out, stats)
    head(out, "luna_build_info", "gauge", "luna's version (always 1)")
    sample(out, "luna_build_info", 'version="' .. escape_label(luna.version or "") .. '"', 1)
    head(out, "luna_uptime_seconds", "gauge", "Seconds since the process started")
    sample(out, "luna_uptime_seconds", nil, stats.uptime_ms / 1000)
    head(out, "luna_lua_memory_bytes", "gauge", "Bytes the Lua state uses")
    sample(out, "luna_lua_memory_bytes", nil, floor(collectgarbage("count") * 1024))
    local rss = M.resident_bytes()
    if rss then
        head(out, "luna_resident_memory_bytes", "gauge", "Resident memory of the process (VmRSS)")
        sample(out, "luna_resident_memory_bytes", nil, rss)
    end
    head(out, "luna_open_files", "gauge", "Open file descriptors")
    sample(out, "luna_open_files", nil, stats.open_files)
    head(out, "luna_timers", "gauge", "Pending timers")
    sample(out, "luna_timers", nil, stats.timers)
    head(out, "luna_log_dropped_total", "counter", "Log lines dropped because the log queue was full")
    sample(out, "luna_log_dropped_total", nil, stats.log_dropped)
end

-- Each socket manager's counters and gauges, labelled by manager.
local function render_sockets(out, managers)
    for _, counter in ipairs(SOCKET_COUNTERS) do
        local name = "luna_socket_" .. counter[1] .. "_total"
        head(out, name, "counter", counter[2])
        for index, values in ipairs(managers) do
            sample(out, name, manager_label(index), values[counter[1]] or 0)
        end
    end
    for _, gauge in ipairs(SOCKET_GAUGES) do
        head(out, gauge[2], "gauge", gauge[3])
        for index, values in ipairs(managers) do
            sample(out, gauge[2], manager_label(index), values[gauge[1]] or 0)
        end
    end
end

-- luna.rpc's counters, when the script uses it.
local function render_rpc(out)
    local rpc_stats = M._rpc_stats()
    if not rpc_stats then return end
    for _, counter in ipairs(RPC_COUNTERS) do
        local name = "luna_rpc_" .. counter[1] .. "_total"
        head(out, name, "counter", counter[2])
        sample(out, name, nil, rpc_stats[counter[1]] or 0)
    end
    head(out, "luna_rpc_pending", "gauge", "Calls of ours waiting for answers")
    sample(out, "luna_rpc_pending", nil, rpc_stats.pending or 0)
    head(out, "luna_rpc_serving", "gauge", "Calls being handled here")
    sample(out, "luna_rpc_serving", nil, rpc_stats.serving or 0)
end

-- This module's own counters: dropped series, requests by HTTP status.
local function render_self(out)
    head(out, "luna_metrics_series_dropped_total", "counter",
        "Label combinations of script metrics dropped (past luna.metrics.max_series)")
    sample(out, "luna_metrics_series_dropped_total", nil, series_dropped)
    head(out, "luna_metrics_requests_total", "counter", "Requests to the metrics endpoint, by HTTP status")
    local codes = {}
    for code in pairs(requests) do codes[#codes + 1] = code end
    sort(codes)
    for _, code in ipairs(codes) do
        sample(out, "luna_metrics_requests_total", 'code="' .. code .. '"', requests[code])
    end
end

-- luna's own metrics (names starting with luna_).
local function render_builtin(out)
    local stats = luna.process_stats()
    render_process(out, stats)
    render_sockets(out, stats.managers)
    render_rpc(out)
    render_self(out)
end

-- A gauge read by its function at each scrape (nothing when it fails).
local function render_read_gauge(out, metric)
    local ok, value = xpcall(metric.read, debug.traceback)
    if not ok or type(value) ~= "number" then
        log.error(format("metric '%s': its function %s", metric.name,
            ok and ("returned " .. type(value) .. ", not a number") or ("failed: " .. tostring(value))))
        return
    end
    head(out, metric.name, "gauge", metric.help)
    sample(out, metric.name, nil, value)
end

-- The head of a counter, gauge or histogram; an unlabelled one exists
-- (with zeros) from its registration.
local function render_head(out, metric)
    head(out, metric.name, metric.kind, metric.help)
    if #metric.label_names == 0 then series_of(metric, "") end
end

-- A counter or gauge: one sample per series.
local function render_values(out, metric)
    render_head(out, metric)
    for _, key in ipairs(metric.keys) do
        sample(out, metric.name, key, metric.series[key].value)
    end
end

-- A histogram: cumulative buckets, sum and count per series.
local function render_histogram(out, metric)
    render_head(out, metric)
    local bucket, bounds = metric.name .. "_bucket", metric.buckets
    for _, key in ipairs(metric.keys) do
        local series = metric.series[key]
        local prefix = key == "" and "" or (key .. ",")
        local cumulative = 0
        for i, bound in ipairs(bounds) do
            cumulative = cumulative + series.counts[i]
            sample(out, bucket, prefix .. 'le="' .. bound_text(bound) .. '"', cumulative)
        end
        sample(out, bucket, prefix .. 'le="+Inf"', series.count)
        sample(out, metric.name .. "_sum", key, series.sum)
        sample(out, metric.name .. "_count", key, series.count)
    end
end

-- One script metric's lines.
local function render_metric(out, metric)
    if metric.kind == "histogram" then return render_histogram(out, metric) end
    if metric.kind == "gauge" and metric.read then return render_read_gauge(out, metric) end
    render_values(out, metric)
end

--- The whole exposition: luna's own metrics, then the script's.
function M.render()
    local out = {}
    render_builtin(out)
    for _, name in ipairs(order) do
        render_metric(out, registry[name])
    end
    return concat(out)
end

------------------------------------------------------------------------
-- The HTTP endpoint

local REASONS = {
    [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
    [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
}

-- Sends the one response of a connection, then closes it.
local function respond(stream, code, body, content_type, extra, head_only)
    requests[code] = (requests[code] or 0) + 1
    local head_text = format("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n",
        code, REASONS[code], content_type or "text/plain; charset=utf-8", #body, extra or "")
    -- The whole response is queued at once: make room for exactly it.
    stream.set_send_buffer_size(#head_text + #body + 4096)
    local ok, err = stream.write(head_text)
    if ok and not head_only and #body > 0 then ok, err = stream.write(body) end
    if not ok then log.warn(format("metrics: cannot answer %s:%d: %s", stream.ip, stream.port, tostring(err))) end
    stream.close()
end

-- Answers a complete request head: /metrics to GET and HEAD only.
local function handle_request(stream, text)
    local method, target = text:match("^(%u+) (%S+) HTTP/%d%.%d\r?\n")
    if not method then
        return respond(stream, 400, "bad request line\n")
    end
    local path = target:match("^[^?#]*")
    if path ~= "/metrics" then
        return respond(stream, 404, "not found: the metrics are at /metrics\n")
    end
    if method ~= "GET" and method ~= "HEAD" then
        return respond(stream, 405, "method not allowed: use GET\n", nil, "Allow: GET, HEAD\r\n")
    end
    local ok, body = xpcall(M.render, debug.traceback)
    if not ok then
        log.error("metrics: cannot render the metrics: " .. tostring(body))
        return respond(stream, 500, "cannot render the metrics (see the process's log)\n")
    end
    respond(stream, 200, body, "text/plain; version=0.0.4; charset=utf-8", nil, method == "HEAD")
end

-- Reads one request head (bounded) from a scraper and answers it.
local function serve_connection(stream)
    stream.set_timeout(REQUEST_TIMEOUT_MS)
    local buffer, done = "", false
    stream.on_data = function(data)
        if done then return end -- answered: the rest (a body, a second request) is ignored
        buffer = buffer .. data
        local head_end = buffer:find("\r\n\r\n", 1, true) or buffer:find("\n\n", 1, true)
        if not head_end and #buffer <= MAX_REQUEST then return end
        done = true
        if not head_end or head_end > MAX_REQUEST then
            log.warn(format("metrics: request from %s:%d is larger than %d bytes: refused", stream.ip, stream.port,
                MAX_REQUEST))
            return respond(stream, 431, format("request too large (at most %d bytes)\n", MAX_REQUEST))
        end
        handle_request(stream, buffer)
        buffer = ""
    end
    stream.on_error = function() done = true end
end

--- Serves GET /metrics on host:port; returns the listener, or nil and an error.
function M.serve(host, port)
    if host == "localhost" then host = "127.0.0.1" end
    local mgr = luna.create_socket_mgr(MAX_CLIENTS + 1)
    M._manager_roles[#luna.process_stats().managers] = "metrics"
    local listener, err, detail = mgr.listen(host, port, { framing = "raw" })
    if not listener then return nil, tostring(err) .. (detail and (": " .. detail) or "") end
    listener.on_accept = serve_connection
    local shown = listener.ip:find(":", 1, true) and ("[" .. listener.ip .. "]") or listener.ip
    log.info(format("metrics on http://%s:%d/metrics", shown, listener.port))
    M.listener = listener
    return listener
end

luna.metrics = M
return M
