-- Run as `luna app/main.lua` from relative/: relative imports look next to
-- the entry first, then in the current directory.
print("shared", import("shared.lua").where)
print("fallback", import("only_cwd").where)
luna_quit_flag = true
