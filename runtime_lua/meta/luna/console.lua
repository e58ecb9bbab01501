---@meta luna.console
-- luna.console: the debug console of `--console HOST:PORT` (help, stats,
-- mem, gc, reload, conns, timers, eval <lua>, quit), for `nc`.

---The luna.console module.
---@class luna.console
---@field listener? luna.Listener # the console's listener, once started
local console = {}

---Milliseconds an eval may run (or wait) before it is stopped with an error (default 10000).
---@type integer
console.eval_limit_ms = 10000

---Opens the console on host:port (a non-loopback address needs LUNA_CLUSTER_SECRET).
---@param host string
---@param port integer
---@return luna.Listener? listener
---@return string? err
function console.start(host, port) end

---True for 127.x.x.x, ::1, ::ffff:127.x.x.x and localhost.
---@param host string
---@return boolean
function console.is_loopback(host) end

---A value as the console prints it (tables a few levels deep).
---@param value any
---@param depth? integer
---@param seen? table
---@return string
function console.show(value, depth, seen) end

return console
