-- luna.log: `luna.log.info(...)` or `luna.log("info", ...)`; lines go to
-- stderr (or --log-file) with time, level and the process's name, filtered
-- by --log-level. A background thread writes them: logging never blocks.
local luna = luna
local core_log, enabled = luna._log, luna._log_enabled
local select, tostring, concat = select, tostring, table.concat

local function format(...)
    local n = select("#", ...)
    if n == 1 then
        return tostring((...))
    elseif n == 2 then
        local a, b = ...
        return tostring(a) .. " " .. tostring(b)
    elseif n == 3 then
        local a, b, c = ...
        return tostring(a) .. " " .. tostring(b) .. " " .. tostring(c)
    end
    local parts = {}
    for i = 1, n do
        parts[i] = tostring((select(i, ...)))
    end
    return concat(parts, " ")
end

local log = {}
local levels = {}
for _, level in ipairs({ "debug", "info", "warn", "error" }) do
    log[level] = function(...)
        if enabled(level) then
            -- Lines written while a traced call or message is handled carry its trace id.
            local trace = luna.trace_id and luna.trace_id()
            if trace then
                core_log(level, "[trace=" .. trace .. "] " .. format(...))
            else
                core_log(level, format(...))
            end
        end
    end
    levels[level] = log[level]
end
log.warning = log.warn
levels.warning = log.warn

--- Shows `name` (e.g. the service id; luna.cluster sets it) on every line; nil removes it.
log.set_name = luna._log_set_name

--- Log lines dropped so far because the queue was full (or lost on a failed write).
log.dropped = luna._log_dropped

setmetatable(log, {
    __call = function(_, level, ...)
        local write = levels[level]
        if not write then
            error("luna.log: unknown level '" .. tostring(level) .. "' (debug, info, warn, error)", 2)
        end
        write(...)
    end,
})

luna.log = log
return log
