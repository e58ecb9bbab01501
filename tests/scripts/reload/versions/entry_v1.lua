-- An entry file that tests/reload.rs replaces by entry_v2.lua while it runs.
function on_start() print('version 1') end
function on_reload() print('reload sees ' .. VERSION) end
VERSION = 'one'
