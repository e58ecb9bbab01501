-- import: one sandbox per file, globals kept out of _G, reads falling through.
local a = import("counter.lua")
local b = import("counter.lua")
print("same", a == b, a.get())
print("leak", rawget(_G, "secret"), a.secret)
print("reads fall through", a.print == print)
print("entry sandboxed", rawget(_G, "on_start") == nil)
local ok, err = pcall(import, "lib/missing.lua")
print("missing", ok, err:match("cannot find 'lib/missing.lua'") ~= nil)
function on_start() luna_quit_flag = true end
