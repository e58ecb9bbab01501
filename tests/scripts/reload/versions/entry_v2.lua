-- The second version of entry_v1.lua.
function on_reload() print('reload sees ' .. VERSION) end
VERSION = 'two'
