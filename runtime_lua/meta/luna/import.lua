---@meta luna.import
-- luna.import: the loader behind `import` and hot reload (used by the
-- runtime's entry and the console). Scripts call `import(path)` and
-- `luna.reload()` instead.

---The luna.import module.
---@class luna.import
---@field on_reloaded? fun(path: string) # set by the runtime: calls the entry's `on_reload`
local importer = {}

---The real path `import` would load for `path`, or nil and the places tried.
---@param path string
---@return string? real
---@return string? tried
function importer.resolve(path) end

---Sets the directory relative imports look in first (the entry's).
---@param dir string?
function importer.set_base_dir(dir) end

---An error's message with the traceback of the script's own frames.
---@param message any
---@return string
function importer.traceback(message) end

---Loads a file (a real path) into a new watched environment once.
---@param real string
---@return table? env
---@return string? err
function importer.load(real) end

---Re-runs a changed file into its environment.
---@param path string # a real path
---@return boolean reloaded # true if new code ran
function importer.reload(path) end

---The environment of an imported file (by real path).
---@param path string
---@return table?
function importer.env_of(path) end

return importer
