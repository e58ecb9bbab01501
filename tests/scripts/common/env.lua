-- Settings from environment variables, for the scripts of tests/faults.rs
-- and tests/security.rs (through their common.lua).

--- The environment variable `name`, or `default` when it is unset or empty.
function env(name, default)
    local value = os.getenv(name)
    if value == nil or value == "" then return default end
    return value
end

--- The environment variable `name` as a number, or `default`.
function num(name, default)
    local value = env(name)
    return value and tonumber(value) or default
end

--- The comma-separated list in the environment variable `name`.
function list(name)
    local items = {}
    for item in env(name, ""):gmatch("[^,]+") do items[#items + 1] = item end
    return items
end
