-- luna.log: `luna.log.info(...)` or `luna.log("info", ...)`; lines go to
-- stderr with time and level, filtered by --log-level.
local luna = luna
local core_log, enabled = luna._log, luna._log_enabled
local select, tostring, concat = select, tostring, table.concat

local function format(...)
    local n = select("#", ...)
    if n == 1 then
        return tostring((...))
    end
    local parts = {}
    for i = 1, n do
        parts[i] = tostring((select(i, ...)))
    end
    return concat(parts, " ")
end

local log = {}
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(...)
        if enabled(level) then
            core_log(level, format(...))
        end
    end
end
log.warning = log.warn

setmetatable(log, {
    __call = function(_, level, ...)
        local write = log[level]
        if not write then
            error("luna.log: unknown level '" .. tostring(level) .. "' (debug, info, warn, error)", 2)
        end
        write(...)
    end,
})

luna.log = log
return log
