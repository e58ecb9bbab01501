-- luna_entry and on_quit_signal: the life of a service process.
local luna = luna
local log = luna.log
local importer = require("luna.import")
local traceback = debug.traceback

local entry_env = nil -- the entry file's environment

--- Default quit handler: ends the main loop.
function on_quit_signal(signo)
    luna_quit_flag = true
end
-- Modules that want their own default (luna.cluster drains) replace it only while it is this one.
luna.default_quit_signal = on_quit_signal

local function lookup(name)
    if entry_env then
        local value = entry_env[name] -- falls through to _G
        if value ~= nil then return value end
    end
    return _G[name]
end

local function quitting()
    return lookup("luna_quit_flag") and true or false
end

local signal_names = { [2] = "SIGINT", [15] = "SIGTERM" }

local function on_signal(signo)
    log.info("received " .. (signal_names[signo] or ("signal " .. signo)) .. ": quitting")
    local handler = lookup("on_quit_signal")
    handler(signo)
end

importer.on_reloaded = function(path)
    local on_reload = entry_env and entry_env.on_reload
    if on_reload then
        local ok, err = xpcall(on_reload, traceback, path)
        if not ok then log.error("error in on_reload: " .. err) end
    end
end

luna._set_hooks({ on_signal = on_signal, on_file_changed = importer.reload })

local exit_hooks = {}

--- Registers fn() to run when the process stops gracefully, after on_stop
--- and before output is flushed (e.g. to deregister from discovery).
function luna.at_exit(fn)
    exit_hooks[#exit_hooks + 1] = fn
end

--- Seconds to wait for output to flush when quitting (default 5).
luna.quit_flush_seconds = 5

--- The entry file's environment (nil before it is imported): the console's eval runs there.
function luna._entry_env()
    return entry_env
end

-- The script could not start: the process exits 1 with this message (the
-- host prints it as it is: it already names the user's file and line).
local function start_failed(message)
    error({ message = message }, 0)
end

-- Endpoints the command line asks for (--metrics, --console), opened before
-- on_start; one that cannot be opened stops the start (exit status 1).
local function start_endpoints()
    local options = luna.options or {}
    local function shown(endpoint)
        local host = endpoint.host:find(":", 1, true) and ("[" .. endpoint.host .. "]") or endpoint.host
        return host .. ":" .. endpoint.port
    end
    if options.metrics then
        local ok, err = require("luna.metrics").serve(options.metrics.host, options.metrics.port)
        if not ok then start_failed("--metrics " .. shown(options.metrics) .. ": cannot serve the metrics: " .. err) end
    end
    if options.console then
        local ok, err = require("luna.console").start(options.console.host, options.console.port)
        if not ok then start_failed("--console " .. shown(options.console) .. ": cannot open the console: " .. err) end
    end
end

local function call_loop(on_loop)
    local ok, err = xpcall(on_loop, traceback, luna.get_time_ms())
    if not ok then
        log.error("error in on_loop: " .. err)
        -- Keep serving, but do not spin if on_loop fails before it waits.
        luna.wait(100)
    elseif not quitting() then
        luna.wait(0)
    end
end

-- The entry's directory is searched first by require, for Lua and C modules.
local function search_first(dir)
    package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
    package.cpath = dir .. "/?.so;" .. package.cpath
end

-- Loads an entry file (hot-reloaded like any import); returns its environment.
local function load_entry_file(real)
    local dir = real:match("^(.*)/[^/]*$")
    importer.set_base_dir(dir)
    search_first(dir)
    local env, err = importer.load(real)
    if not env then start_failed(err) end
    return env
end

-- `luna -m NAME`: a module that require finds, run as the entry: a runtime
-- module (luna.router...) or a file on package.path.
local function load_entry_module(name)
    local short = name:match("^luna%.(.+)$")
    if short then
        local on_disk = luna.runtime_dir and luna.realpath(luna.runtime_dir .. "/" .. short .. ".lua")
        if on_disk then return load_entry_file(on_disk) end
        local loader = package.searchers[2](name)
        if type(loader) == "function" then
            local env = setmetatable({}, { __index = _G })
            debug.setupvalue(loader, 1, env) -- the chunk's _ENV
            local ok, err = xpcall(loader, importer.traceback)
            if not ok then start_failed(err) end
            return env
        end
    end
    local path, tried = package.searchpath(name, package.path)
    if not path then
        start_failed("luna -m: no module '" .. name .. "' (not a luna runtime module; tried:" .. tried .. ")")
    end
    return load_entry_file(luna.realpath(path) or path)
end

--- Runs the entry file: on_start, the loop, on_stop, flush.
function luna_entry(entry_file, ...)
    if luna.options and luna.options.module then
        entry_env = load_entry_module(entry_file)
    else
        local real = luna.realpath(entry_file)
        if not real then start_failed("cannot open entry script '" .. tostring(entry_file) .. "'") end
        entry_env = load_entry_file(real)
    end
    start_endpoints()
    local on_start = entry_env.on_start
    if on_start then
        local ok, start_err = xpcall(on_start, importer.traceback, ...)
        if not ok then start_failed(start_err) end
    end
    luna._notify("READY=1") -- a supervisor (systemd Type=notify) may now route traffic here
    while not quitting() do
        local on_loop = entry_env.on_loop
        if on_loop then
            call_loop(on_loop)
        else
            luna.wait()
        end
    end
    luna._notify("STOPPING=1")
    local on_stop = entry_env.on_stop
    if on_stop then
        local ok, err = xpcall(on_stop, traceback)
        if not ok then log.error("error in on_stop: " .. err) end
    end
    for i = #exit_hooks, 1, -1 do
        local ok, err = xpcall(exit_hooks[i], traceback)
        if not ok then log.error("error in an exit hook: " .. err) end
    end
    if not luna.flush(luna.quit_flush_seconds * 1000) then
        log.warn("some output could not be delivered before exit")
    end
end
