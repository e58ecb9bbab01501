---@meta luna.log
-- luna.log: `luna.log.info(...)` or `luna.log("info", ...)`. Lines go to
-- stderr (or `--log-file`) as `time LEVEL [name] message`, filtered by
-- `--log-level`; a background thread writes them, so logging never blocks.
-- Also `require("luna.log")`.

---Logging. Arguments are joined with spaces (`tostring` each). Calling the
---table logs at a level: `luna.log("warn", ...)` (an unknown level raises an error).
---@class luna.log
---@overload fun(level: luna.LogLevel, ...: any)
local log = {}

---Logs at level debug.
---@param ... any
function log.debug(...) end

---Logs at level info.
---@param ... any
function log.info(...) end

---Logs at level warn.
---@param ... any
function log.warn(...) end

---Same as `log.warn`.
---@param ... any
function log.warning(...) end

---Logs at level error.
---@param ... any
function log.error(...) end

---Shows `name` on every line (luna.cluster sets the node's service id); nil removes it.
---@param name string?
---@return true? ok
---@return string? err
function log.set_name(name) end

---Log lines dropped so far because the queue was full (or lost on a failed write).
---@return integer
function log.dropped() end

return log
