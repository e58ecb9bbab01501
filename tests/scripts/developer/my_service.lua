-- Run with `luna -m my_service` from any directory (it is on LUA_PATH).
print("module entry " .. tostring(luna.args[1]))
function on_start() luna_quit_flag = true end
