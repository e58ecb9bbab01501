---@meta luna.metrics
-- luna.metrics (also `luna.metrics`): counters, gauges and histograms for
-- scripts, served with luna's own at `--metrics HOST:PORT` (GET /metrics,
-- Prometheus text format). Names: [a-zA-Z_:][a-zA-Z0-9_:]*, `luna_` is
-- reserved. Registering a name again returns the same metric when type,
-- labels and buckets match, else raises an error.

---Label values by name (`{ kind = "mail" }`) or by position (`{ "mail" }`).
---@alias luna.metrics.Labels table<string|integer, any>

---A counter (samples named `<name>_total`).
---@class luna.metrics.Counter
---@field name string # the exposed name (with `_total`)
local Counter = {}

---Adds `n` (default 1, never negative).
---@param n? number
---@param labels? luna.metrics.Labels
---@overload fun(labels: luna.metrics.Labels)
function Counter.inc(n, labels) end

---The current value.
---@param labels? luna.metrics.Labels
---@return number
function Counter.get(labels) end

---A gauge.
---@class luna.metrics.Gauge
---@field name string
local Gauge = {}

---Sets the value.
---@param value number
---@param labels? luna.metrics.Labels
function Gauge.set(value, labels) end

---Adds `n` (default 1).
---@param n? number
---@param labels? luna.metrics.Labels
---@overload fun(labels: luna.metrics.Labels)
function Gauge.inc(n, labels) end

---Subtracts `n` (default 1).
---@param n? number
---@param labels? luna.metrics.Labels
---@overload fun(labels: luna.metrics.Labels)
function Gauge.dec(n, labels) end

---The current value.
---@param labels? luna.metrics.Labels
---@return number
function Gauge.get(labels) end

---Reads the value from `fn()` at each scrape (gauges without labels; nil stops it).
---@param fn? fun(): number
function Gauge.set_function(fn) end

---A histogram: `<name>_bucket{le=...}` (cumulative), `<name>_sum`, `<name>_count`.
---@class luna.metrics.Histogram
---@field name string
local Histogram = {}

---Counts one observation.
---@param value number
---@param labels? luna.metrics.Labels
function Histogram.observe(value, labels) end

---How many observations and their sum.
---@param labels? luna.metrics.Labels
---@return integer count
---@return number sum
function Histogram.get(labels) end

---The luna.metrics module.
---@class luna.metrics
---@field listener? luna.Listener # the endpoint's listener, once serving
local metrics = {}

---Label combinations one metric keeps (default 10,000); further ones are dropped, counted and logged once.
---@type integer
metrics.max_series = 10000

---A counter. Raises an error on a bad or reserved name.
---@param name string
---@param help? string
---@param label_names? string[]
---@return luna.metrics.Counter
function metrics.counter(name, help, label_names) end

---A gauge.
---@param name string
---@param help? string
---@param label_names? string[]
---@return luna.metrics.Gauge
function metrics.gauge(name, help, label_names) end

---A histogram; `buckets` are upper bounds in increasing order (default 0.005 .. 10; +Inf is added).
---@param name string
---@param help? string
---@param buckets? number[]
---@param label_names? string[]
---@return luna.metrics.Histogram
---@overload fun(name: string, help: string?, label_names: string[]): luna.metrics.Histogram
function metrics.histogram(name, help, buckets, label_names) end

---The whole exposition text: luna's own metrics, then the script's.
---@return string
function metrics.render() end

---Bytes of memory resident (`VmRSS`, or another /proc/self/status field), nil where unknown.
---@param field? string
---@return integer?
function metrics.resident_bytes(field) end

---Serves GET /metrics on host:port (what `--metrics` does).
---@param host string
---@param port integer
---@return luna.Listener? listener
---@return string? err
function metrics.serve(host, port) end

return metrics
