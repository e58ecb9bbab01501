-- The Lua side of a luna process, run once before the entry script.
-- Each piece lives in its own module; `require("luna.<name>")` finds them,
-- compiled into the binary or, with --runtime DIR, read from DIR.
require("luna.log")
require("luna.timer")
require("luna.import")
require("luna.entry")
require("luna.metrics") -- luna.metrics: script metrics, served with --metrics
require("luna.trace") -- luna.trace_id and luna.with_trace (luna.rpc loads when a script uses it)

-- The seed luna exposed the socket manager constructor as a global.
create_socket_mgr = luna.create_socket_mgr

-- Lua C modules: besides Lua's defaults (/usr/local/lib/lua/5.4, where
-- luarocks --lua-version 5.4 installs), look where distributions install
-- Lua 5.4 modules (apt install lua-cjson). LUA_PATH/LUA_CPATH, when set, win.
local function add_dirs(field, env_names, dirs)
    for _, name in ipairs(env_names) do
        if os.getenv(name) then return end
    end
    package[field] = package[field] .. ";" .. table.concat(dirs, ";")
end
local multiarch = "/usr/lib/" .. luna.arch .. "-linux-gnu/lua/5.4"
add_dirs("cpath", { "LUA_CPATH_5_4", "LUA_CPATH" },
    { multiarch .. "/?.so", "/usr/lib64/lua/5.4/?.so", "/usr/lib/lua/5.4/?.so" })
add_dirs("path", { "LUA_PATH_5_4", "LUA_PATH" },
    { "/usr/share/lua/5.4/?.lua", "/usr/share/lua/5.4/?/init.lua", multiarch .. "/?.lua" })
