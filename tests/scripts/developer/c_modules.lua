-- Loads Lua C modules: `tiny` (compiled by the test next to this entry, found
-- through the entry's directory on package.cpath) and the distribution's
-- lua-cjson and lua-lpeg (found in their default directories).
local tiny = require("tiny")
print("tiny add " .. tiny.add(2, 40))
local ok, err = pcall(tiny.add, "x", 1)
print("tiny error " .. tostring(not ok) .. " " .. tostring(err))
if luna.args[1] == "distro" then
    local cjson = require("cjson")
    local decoded = cjson.decode(cjson.encode({ list = { 1, 2, 3 }, name = "luna" }))
    print("cjson " .. decoded.name .. " " .. #decoded.list)
    local lpeg = require("lpeg")
    print("lpeg " .. lpeg.match(lpeg.C(lpeg.R("az") ^ 1), "hello world"))
end
luna_quit_flag = true
