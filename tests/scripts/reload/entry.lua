-- An entry that imports lib/mod.lua and prints `value <x>` at the start and
-- on every reload.
local mod = import("lib/mod.lua")
function on_start() print("value " .. mod.value()) end
function on_reload(path) print("reloaded " .. path:match("[^/]+$")); print("value " .. mod.value()) end
