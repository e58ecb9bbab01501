---@meta lbus
-- `require("lbus")` (the seeds' name) returns the luna module: see luna.lua.

return luna
