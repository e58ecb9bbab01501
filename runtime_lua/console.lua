-- luna.console: the debug console of `--console HOST:PORT`, a line protocol
-- on the process's own loop (usable with `nc HOST PORT`): help, stats, mem,
-- gc, reload, conns, timers, eval <lua>, quit. Loopback addresses only,
-- unless LUNA_CLUSTER_SECRET is set: then clients must send `auth SECRET`
-- first. A client can make the process hold at most one line of input and
-- a small send buffer: one that sends too much or never reads is closed.
local luna = luna
local log = luna.log
local metrics = require("luna.metrics")
local format, concat, rep = string.format, table.concat, string.rep
local type, tostring, pairs, ipairs, select, pcall, xpcall = type, tostring, pairs, ipairs, select, pcall, xpcall
local traceback, sethook, getinfo = debug.traceback, debug.sethook, debug.getinfo

local M = {}

local PROMPT = "luna> "
local MAX_CLIENTS = 16
local MAX_LINE = 64 * 1024 -- bytes of one command line
local MAX_PENDING = 256 * 1024 -- bytes of input held while an eval runs
local SEND_BUFFER = 1024 * 1024 -- unsent output before a client is closed (send-buffer-full)
local AUTH_TIMEOUT_MS = 10000
local MAX_AUTH_TRIES = 3
local MAX_LIST = 1000 -- rows of conns and timers

--- Milliseconds an eval may run (or wait) before it is stopped with an error.
M.eval_limit_ms = 10000

local function is_loopback(host)
    host = host:lower()
    return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
        or host:match("^::ffff:127%.%d+%.%d+%.%d+$") ~= nil
end
M.is_loopback = is_loopback

-- host:port, with brackets around an IPv6 address.
local function address(ip, port)
    if ip:find(":", 1, true) then ip = "[" .. ip .. "]" end
    return ip .. ":" .. port
end

-- This process's id, read from /proc.
local function process_id()
    local file = io.open("/proc/self/stat", "r")
    local pid = file and file:read("n")
    if file then file:close() end
    return tostring(pid or "?")
end

local function kib(bytes)
    return format("%.1f KiB", bytes / 1024)
end

local function mib(bytes)
    return bytes and format("%.1f MiB", bytes / (1024 * 1024)) or "unknown"
end

------------------------------------------------------------------------
-- Showing values

-- A value as text: tables shown to a few levels, bounded in size.
local function show(value, depth, seen)
    if type(value) == "string" then return value end
    if type(value) ~= "table" then
        local ok, text = pcall(tostring, value)
        return ok and text or ("<" .. type(value) .. ": tostring failed>")
    end
    local meta = getmetatable(value)
    if meta and meta.__tostring then
        local ok, text = pcall(tostring, value)
        if ok then return text end
    end
    depth, seen = depth or 0, seen or {}
    if seen[value] then return "<cycle>" end
    if depth >= 3 then return tostring(value) end
    seen[value] = true
    local parts, count, n = {}, 0, #value
    for i = 1, n do
        count = count + 1
        if count > 100 then break end
        parts[#parts + 1] = type(value[i]) == "string" and format("%q", value[i]) or show(value[i], depth + 1, seen)
    end
    local keys = {}
    for key in pairs(value) do
        if not (math.type(key) == "integer" and key >= 1 and key <= n) then keys[#keys + 1] = key end
    end
    table.sort(keys, function(a, b)
        if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
        return type(a) < type(b)
    end)
    for _, key in ipairs(keys) do
        count = count + 1
        if count > 100 then
            parts[#parts + 1] = "..."
            break
        end
        local name = (type(key) == "string" and key:match("^[%a_][%w_]*$")) and key or ("[" .. show(key, 3, seen) .. "]")
        local item = value[key]
        parts[#parts + 1] = name .. " = " .. (type(item) == "string" and format("%q", item) or show(item, depth + 1, seen))
    end
    seen[value] = nil
    return "{ " .. concat(parts, ", ") .. " }"
end
M.show = show

------------------------------------------------------------------------
-- Clients: output. A client is the state of one connection: its stream,
-- peer, whether it authenticated, and the lines it sent that wait to run.

local pump

-- Writes to the client; a client that cannot take it (send-buffer-full) is closed.
local function send(client, text)
    if client.closed then return false end
    local ok, err = client.stream.write(text)
    if not ok then
        client.closed = true
        log.warn(format("console %s: closed: %s", client.peer, tostring(err)))
        return false
    end
    return true
end

-- Closes the connection (once).
local function close_client(client)
    if client.closed then return end
    client.closed = true
    if client.auth_timer then client.auth_timer.cancel() end
    client.stream.close()
end

-- The end of a response: its text, the prompt, then the next queued line.
local function answer(client, text)
    if text ~= "" then send(client, text) end
    send(client, PROMPT)
    client.busy = false
    pump(client)
end

------------------------------------------------------------------------
-- Commands: each returns the response text, or nil when it answers later

local commands = {}
local help_lines = {}

-- Defines a command and its line in `help`.
local function command(name, usage, fn)
    commands[name] = fn
    help_lines[#help_lines + 1] = format("  %-12s %s", name, usage)
end

command("help", "this list", function()
    return "commands:\n" .. concat(help_lines, "\n") .. "\n"
end)

-- A socket manager's number, with its role when the runtime opened it.
local function manager_name(index)
    local role = metrics._manager_roles[index]
    return role and format("%d (%s)", index, role) or tostring(index)
end

local MANAGER_COUNTERS = { "open", "max_fd", "pending_input", "tracked_calls", "forwarded", "forward_failed",
    "bad_packages", "bad_deliveries", "refused", "unhandled", "calls_refused", "recv_buffer_full", "frame_timeouts",
    "ids_refused", "auth_failed", "tls_failed" }

command("stats", "process, socket manager and RPC counters", function()
    local stats = luna.process_stats()
    local out = {
        format("uptime %.1f s, timers %d, open files %d, log lines dropped %d, lua memory %s",
            stats.uptime_ms / 1000, stats.timers, stats.open_files, stats.log_dropped,
            kib(collectgarbage("count") * 1024)),
    }
    for index, counters in ipairs(stats.managers) do
        local parts = {}
        for _, name in ipairs(MANAGER_COUNTERS) do parts[#parts + 1] = name .. "=" .. tostring(counters[name] or 0) end
        out[#out + 1] = "manager " .. manager_name(index) .. ": " .. concat(parts, " ")
    end
    local s = metrics._rpc_stats()
    if s then
        out[#out + 1] = format(
            "rpc: calls=%d completed=%d timeouts=%d late_replies=%d connection_lost=%d no_route=%d remote_errors=%d pending=%d serving=%d",
            s.calls, s.completed, s.timeouts, s.late_replies, s.connection_lost, s.no_route, s.remote_errors,
            s.pending, s.serving)
    else
        out[#out + 1] = "rpc: not loaded"
    end
    return concat(out, "\n") .. "\n"
end)

command("mem", "Lua memory and the process's resident memory", function()
    return format("lua memory %s\nresident   %s\npeak       %s\n", kib(collectgarbage("count") * 1024),
        mib(metrics.resident_bytes("VmRSS")), mib(metrics.resident_bytes("VmHWM")))
end)

command("gc", "run a full garbage collection", function()
    local before = collectgarbage("count") * 1024
    collectgarbage("collect")
    local after = collectgarbage("count") * 1024
    return format("lua memory %s -> %s (freed %s)\n", kib(before), kib(after), kib(before - after))
end)

command("reload", "check every imported file and reload the changed ones", function(_, client)
    local count = luna.reload()
    log.info(format("console %s: reload (%d changed files)", client.peer, count))
    return format("%d changed file%s reloaded\n", count, count == 1 and "" or "s")
end)

command("conns", "open listeners and streams: peer, bytes, age", function()
    local list = luna.connections()
    local out = { format("%-10s %-12s %-10s %-24s %12s %12s %10s %10s", "token", "mgr", "state", "peer",
        "bytes_in", "bytes_out", "unsent", "age") }
    for i, c in ipairs(list) do
        if i > MAX_LIST then
            out[#out + 1] = format("... and %d more", #list - MAX_LIST)
            break
        end
        out[#out + 1] = format("%-10d %-12s %-10s %-24s %12d %12d %10d %9.1fs", c.token, manager_name(c.mgr), c.state,
            address(c.ip, c.port), c.bytes_in, c.bytes_out, c.unsent, c.age_ms / 1000)
    end
    out[#out + 1] = format("%d open", #list)
    return concat(out, "\n") .. "\n"
end)

command("timers", "pending timers: when, how often, where defined", function()
    local list, total = luna._timers(MAX_LIST)
    local out = { format("%d timer%s pending", total, total == 1 and "" or "s") }
    for _, t in ipairs(list) do
        local where = "?"
        if type(t.fn) == "function" then
            local info = getinfo(t.fn, "S")
            where = info.what == "C" and "[C]" or (info.short_src .. ":" .. info.linedefined)
        end
        out[#out + 1] = format("  id %-8d in %6d ms  %-16s %s", t.id, t.due_ms,
            t.period_ms and ("every " .. t.period_ms .. " ms") or "once", where)
    end
    if total > #list then out[#out + 1] = format("  ... and %d more", total - #list) end
    return concat(out, "\n") .. "\n"
end)

-- eval: compiled as an expression first (`eval 1 + 1`), else as a chunk.
local function compile(code, env)
    local fn = load("return " .. code, "=console", "t", env)
    if fn then return fn end
    return load(code, "=console", "t", env)
end

-- eval's results (from index 2 of a packed xpcall), tab-separated.
local function results_text(results)
    local parts = {}
    for i = 2, results.n do parts[#parts + 1] = show(results[i]) end
    if #parts == 0 then return "" end
    return concat(parts, "\t") .. "\n"
end

-- What eval'd code sees: the entry's globals, and a print that writes to the console.
local function eval_env(client)
    local base = luna._entry_env and luna._entry_env() or _G
    return setmetatable({
        print = function(...)
            local parts = {}
            for i = 1, select("#", ...) do parts[i] = show((select(i, ...))) end
            send(client, concat(parts, "\t") .. "\n")
        end,
    }, { __index = base, __newindex = base })
end

-- The one response of an eval (its results, its error, or that it still waits).
local function finish_eval(job, text)
    if job.finished then return end
    job.finished = true
    if job.watchdog then job.watchdog.cancel() end
    answer(job.client, text)
end

-- Runs eval'd code in its own coroutine, so that it may wait (luna.sleep,
-- RPC calls); a hook stops code that runs past the limit instead of
-- freezing the process.
local function run_eval(job, fn, limit)
    local started = luna.get_time_ms()
    sethook(function()
        if luna.get_time_ms() - started > limit then
            sethook()
            error(format("eval stopped: still running after %d ms", limit), 2)
        end
    end, "", 10000)
    local results = table.pack(xpcall(fn, traceback))
    sethook()
    if results[1] then return finish_eval(job, results_text(results)) end
    -- The traceback down to the eval'd code; the console's own frames are noise.
    local message = show(results[2]):gsub("\n%s*%[C%]: in function 'xpcall'.*$", "")
    finish_eval(job, "error: " .. message .. "\n")
end

command("eval", "eval <lua>: run Lua in the main state (the entry's globals), print the results", function(code, client)
    if code:match("^%s*$") then return "error: eval needs some Lua, e.g. eval 1 + 1\n" end
    log.info(format("console %s: eval %s", client.peer, #code > 200 and (code:sub(1, 200) .. "...") or code))
    local fn, err = compile(code, eval_env(client))
    if not fn then return "error: " .. tostring(err) .. "\n" end
    local job, limit = { client = client, finished = false, watchdog = nil }, M.eval_limit_ms
    luna.go(run_eval, job, fn, limit)
    if not job.finished then
        job.watchdog = luna.timer(limit, function()
            job.watchdog = nil
            finish_eval(job, format("error: eval still waiting after %d ms (it goes on without this console)\n", limit))
        end)
    end
    return nil
end)

command("quit", "close this console", function(_, client)
    send(client, "bye\n")
    close_client(client)
end)

------------------------------------------------------------------------
-- Clients: input

-- `auth SECRET`: the reply text, or nil after the last wrong try (closed).
local function authenticate(client, secret)
    if client.authed then return "already authenticated\n" end
    if luna._secret_equals(secret, client.secret) then
        client.authed = true
        if client.auth_timer then client.auth_timer.cancel() end
        log.info(format("console %s: authenticated", client.peer))
        return "ok\n"
    end
    client.tries = client.tries + 1
    log.warn(format("console %s: wrong secret (try %d of %d)", client.peer, client.tries, MAX_AUTH_TRIES))
    if client.tries >= MAX_AUTH_TRIES then
        send(client, "error: wrong secret; too many tries\n")
        close_client(client)
        return nil
    end
    return "error: wrong secret\n"
end

-- Runs one command line; returns the response text, or nil when it answers later.
local function run(client, line)
    local name, rest = line:match("^%s*(%S+)%s?(.*)$")
    if not name then return "" end
    if name == "auth" then return authenticate(client, rest) end
    if not client.authed and name ~= "quit" and name ~= "help" then
        return "error: authentication required (send: auth SECRET)\n"
    end
    local fn = commands[name]
    if not fn then
        return format("error: unknown command '%s' (try help)\n", #name > 64 and (name:sub(1, 64) .. "...") or name)
    end
    local ok, text = xpcall(fn, traceback, rest, client)
    if not ok then return "error: " .. tostring(text) .. "\n" end
    return text
end

-- Runs queued lines one by one; a command that answers later (eval) holds the rest back.
function pump(client)
    if client.pumping then return end -- an answer given while a line runs: the loop below goes on
    client.pumping = true
    while not client.busy and not client.closed and client.first <= client.last do
        local line = client.lines[client.first]
        client.lines[client.first] = nil
        client.first = client.first + 1
        client.pending = client.pending - #line - 1
        client.busy = true
        local ok, text = pcall(run, client, line)
        if not ok then text = "error: " .. tostring(text) .. "\n" end
        if text then answer(client, text) end
    end
    client.pumping = false
end

-- Queues the complete lines of the input; the rest waits for more.
local function queue_lines(client)
    local input, start = client.input, 1
    while true do
        local at = input:find("\n", start, true)
        if not at then break end
        local line = input:sub(start, at - 1):gsub("\r$", "")
        if #line > MAX_LINE then break end
        client.last = client.last + 1
        client.lines[client.last] = line
        client.pending = client.pending + #line + 1
        start = at + 1
    end
    client.input = input:sub(start)
end

-- Bytes from the client: queued as lines and run; too much input closes it.
local function on_data(client, data)
    if client.closed then return end
    client.input = client.input .. data
    queue_lines(client)
    local too_long = #client.input > MAX_LINE
    if too_long or client.pending > MAX_PENDING then
        log.warn(format("console %s: %s: closed", client.peer, too_long and "line too long" or "too much input"))
        send(client, too_long and format("error: line too long (at most %d bytes)\n", MAX_LINE)
            or format("error: too much input while busy (at most %d bytes)\n", MAX_PENDING))
        close_client(client)
        return
    end
    pump(client)
end

-- A client that has not authenticated within AUTH_TIMEOUT_MS is closed.
local function auth_timed_out(client)
    client.auth_timer = nil
    if client.authed or client.closed then return end
    log.warn(format("console %s: no authentication within %d ms: closed", client.peer, AUTH_TIMEOUT_MS))
    send(client, "error: no authentication in time\n")
    close_client(client)
end

-- A new connection: greeting, authentication when a secret is set, prompt.
local function serve_client(stream, secret)
    local client = {
        stream = stream, peer = address(stream.ip, stream.port), secret = secret, authed = secret == nil,
        input = "", busy = false, closed = false, tries = 0, auth_timer = nil, pumping = false,
        lines = {}, first = 1, last = 0, pending = 0, -- complete lines not run yet, and their bytes
    }
    stream.set_send_buffer_size(SEND_BUFFER)
    stream.on_data = function(data) on_data(client, data) end
    stream.on_error = function(err)
        if client.auth_timer then client.auth_timer.cancel() end
        if not client.closed then log.info(format("console %s: left (%s)", client.peer, tostring(err))) end
        client.closed = true
    end

    log.info(format("console %s: connected", client.peer))
    send(client, format("luna console: pid %s, luna %s, entry %s (type help)\n", process_id(),
        tostring(luna.version), tostring(luna.args and luna.args[0])))
    if secret then
        send(client, "authentication required: send `auth SECRET`\n")
        client.auth_timer = luna.timer(AUTH_TIMEOUT_MS, function() auth_timed_out(client) end)
    end
    send(client, PROMPT)
end

--- Opens the console on host:port; returns the listener, or nil and an error.
function M.start(host, port)
    if host == "localhost" then host = "127.0.0.1" end
    local secret = os.getenv("LUNA_CLUSTER_SECRET")
    if secret == "" then secret = nil end
    if is_loopback(host) then
        secret = nil -- only this machine can connect: no password
    elseif not secret then
        return nil, "refusing a non-loopback address without a cluster secret "
            .. "(set LUNA_CLUSTER_SECRET, then clients must send `auth SECRET`; or use 127.0.0.1)"
    end
    local mgr = luna.create_socket_mgr(MAX_CLIENTS + 1)
    metrics._manager_roles[#luna.process_stats().managers] = "console"
    local listener, err, detail = mgr.listen(host, port, { framing = "raw" })
    if not listener then return nil, tostring(err) .. (detail and (": " .. detail) or "") end
    listener.on_accept = function(stream) serve_client(stream, secret) end
    log.info(format("console on %s%s", address(listener.ip, listener.port),
        secret and " (clients must authenticate)" or ""))
    M.listener = listener
    return listener
end

return M
