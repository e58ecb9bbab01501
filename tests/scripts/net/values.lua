-- A random value generator and deep comparison for round_trip.lua
-- (imported: returns this file's environment). luna.args[2] seeds it.
local M = _ENV
local seed = tonumber(luna.args[2]) or 1
local function rand(n) -- deterministic LCG, 1..n
    seed = (seed * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (seed >> 33) % n + 1
end
local function random_bytes()
    local t = {}
    for i = 1, rand(12) - 1 do t[i] = string.char(rand(256) - 1) end
    return table.concat(t)
end
local scalars = {
    function() return rand(2) == 1 end,
    function() return rand(1000) - 500 end,
    function() return math.maxinteger - rand(3) + 1 end,
    function() return math.mininteger + rand(3) - 1 end,
    function() return (rand(1000) - 500) / 7 end,
    function() return rand(100) + 0.0 end, -- integral float stays float
    function() return -0.0 end,
    function() return 1e300 * rand(2) end,
    function() return random_bytes() end,
    function() return "unicode ✓ " .. rand(9) end,
}
function M.value(depth)
    local kind = rand(depth > 4 and 10 or 14)
    if kind <= 10 then return scalars[kind]() end
    local t = {}
    if kind == 11 then -- sequence
        for i = 1, rand(6) do t[i] = M.value(depth + 1) end
    elseif kind == 12 then -- map with assorted keys
        for _ = 1, rand(5) do
            local keys = { random_bytes(), rand(100), rand(100) + 0.5, rand(2) == 1 }
            local k = keys[rand(4)]
            t[k] = M.value(depth + 1)
        end
    elseif kind == 13 then -- holed
        for i = 1, rand(6) do if rand(2) == 1 then t[i * 2] = M.value(depth + 1) end end
        t[1] = "first"
    else -- mixed
        for i = 1, rand(4) do t[i] = M.value(depth + 1) end
        t.name = M.value(depth + 1)
    end
    return t
end
function M.equal(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) == "number" then
        return math.type(a) == math.type(b) and (a == b or (a ~= a and b ~= b))
            and (a ~= 0 or 1 / a == 1 / b)
    end
    if type(a) ~= "table" then return a == b end
    for k, v in pairs(a) do if not M.equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
end
