-- `luna forced.lua <path of lib/mod.lua>`: rewrites the module, then
-- luna.reload() applies it at once.
local mod = import("lib/mod.lua")
function on_start()
    local before = mod.value()
    local file = io.open(luna.args[1], "w")
    file:write("function value() return 'v2' end\n")
    file:close()
    local count = luna.reload()
    print("forced", before, mod.value(), count)
    luna_quit_flag = true
end
