-- import(path): each file in its own environment (reads fall through to
-- _G, writes stay local), loaded once, watched, and re-run into the same
-- environment when it changes on disk.
local luna = luna
local log = luna.log
local realpath, watch = luna.realpath, luna._watch
local traceback = debug.traceback

local imported = {} -- real path -> { env = table, source = string }
local base_dir = nil -- directory of the entry file
local M = {}

local function read_file(path)
    local file, err = io.open(path, "rb")
    if not file then return nil, err end
    local source = file:read("a")
    file:close()
    return source
end

local function candidates(path)
    local list = {}
    local function add(p)
        list[#list + 1] = p
        if not p:match("%.lua$") then list[#list + 1] = p .. ".lua" end
    end
    if path:sub(1, 1) == "/" then
        add(path)
    else
        if base_dir then add(base_dir .. "/" .. path) end
        add(path)
    end
    return list
end

--- The real path import would load for `path`, or nil and the places tried.
function M.resolve(path)
    local tried = candidates(path)
    for _, candidate in ipairs(tried) do
        local real = realpath(candidate)
        if real then return real end
    end
    return nil, table.concat(tried, ", ")
end

--- Sets the directory relative imports look in first (the entry's).
function M.set_base_dir(dir)
    base_dir = dir
end

--- An error's message with the traceback of the script's own frames: the
--- runtime's frames (from the xpcall that ran the script on) are cut off.
function M.traceback(message)
    local text = traceback(tostring(message), 2)
    local cut = text:find("\n%s*%[C%]: in function 'xpcall'")
    return cut and text:sub(1, cut - 1) or text
end

--- Loads a file (a real path) into a new watched environment once; returns
--- the environment, or nil and the error (file:line, with one traceback).
function M.load(real)
    local record = imported[real]
    if record then return record.env end
    local source, err = read_file(real)
    if not source then return nil, "cannot read " .. real .. ": " .. tostring(err) end
    local env = setmetatable({}, { __index = _G })
    local chunk, compile_err = load(source, "@" .. real, "t", env)
    if not chunk then return nil, compile_err end -- already "file:line: message"
    record = { env = env, source = source }
    imported[real] = record
    watch(real)
    local ok, run_err = xpcall(chunk, M.traceback)
    if not ok then
        imported[real] = nil
        return nil, run_err
    end
    return env
end

function import(path)
    if type(path) ~= "string" then
        error("import: a file path is required", 2)
    end
    local real, tried = M.resolve(path)
    if not real then
        error("import: cannot find '" .. path .. "' (tried " .. tried .. ")", 2)
    end
    local env, err = M.load(real)
    if not env then error(err, 0) end
    return env
end

--- Re-runs a changed file into its environment; true if new code ran.
function M.reload(path)
    local record = imported[path]
    if not record then return false end
    local source, err = read_file(path)
    if not source then
        log.warn("reload: cannot read " .. path .. ": " .. tostring(err) .. " (keeping the old code)")
        return false
    end
    if source == record.source or source == record.failed_source then return false end
    local chunk, compile_err = load(source, "@" .. path, "t", record.env)
    if not chunk then
        record.failed_source = source
        log.error("reload failed, keeping the old code: " .. compile_err)
        return false
    end
    record.source, record.failed_source = source, nil
    local ok, run_err = xpcall(chunk, traceback)
    if not ok then
        log.error("reload of " .. path .. " raised an error: " .. run_err)
        return false
    end
    log.info("reloaded " .. path)
    if M.on_reloaded then M.on_reloaded(path) end
    return true
end

--- Checks every imported file now; returns how many were reloaded.
function luna.reload()
    local count = 0
    for path in pairs(imported) do
        if M.reload(path) then count = count + 1 end
    end
    return count
end

--- The environment of an imported file (by real path), if imported.
function M.env_of(path)
    local record = imported[path]
    return record and record.env
end

package.loaded["luna.import"] = M
return M
