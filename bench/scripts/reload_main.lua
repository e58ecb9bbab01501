-- luna-bench: hot reload (W8). Imports version.lua (which sets `version`)
-- and prints "version <v>" at start and after each reload.
local mod = import("version.lua")

function on_start()
    print("version " .. tostring(mod.version))
end

function on_reload(path)
    print("version " .. tostring(mod.version))
end
