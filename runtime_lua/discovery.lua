-- luna.discovery: finding services and electing masters through Redis.
--
--   local discovery = require("luna.discovery")
--   local d = discovery.start{ redis = { host = "127.0.0.1", port = 6379, password = nil, db = 0 },
--                              prefix = "luna", ttl_ms = 3000 }
--   d.register("router", "r1", "127.0.0.1:7101")     -- key luna:router:r1, TTL refreshed every ttl/3
--   d.watch("router", function(name, value) end,     -- added (or value changed)
--                     function(name, value) end)     -- expired or deleted
--   d.lease("match", "3.1", { on_promote = f, on_demote = f })   -- one holder at a time
--   d.stop()                                          -- deletes own keys, releases leases
--
-- Watchers learn of changes from keyspace notifications (enabled with CONFIG
-- SET when allowed; if not, that is logged and only the re-scan finds
-- changes), an initial SCAN, and a re-scan every `rescan_ms` as a safety
-- net. While Redis is down the last known tables stay in use; everything
-- re-syncs when it returns. A name whose key is missing from a scan (Redis
-- restarted empty, say) is removed only once it stayed missing for
-- `grace_ms` (default: the TTL), which gives its owner time to write it
-- again; an expiry or deletion notified while connected removes it at once.
--
-- Leases never overlap: runtime_lua/lease.lua and docs/discovery.md.
--
-- The functions below take `disc`, the private state of one started
-- discovery; `d`, the object start returns, holds only the public API.
local luna = luna
local log = luna.log
local redis = require("luna.redis")
local leases = require("luna.lease")

local M = {}

local SCAN_COUNT = 200 -- keys one SCAN page asks for

-- A command callback that reports a failure (an outage is reported by
-- the Redis client itself, once).
local function report(what)
    return function(_, err)
        if err and err ~= "redis-unavailable" then log.warn("discovery: cannot " .. what .. ": " .. err) end
    end
end

-- The key of kind/name: prefix:kind:name.
local function key_of(disc, kind, name)
    return disc.prefix .. ":" .. kind .. ":" .. name
end

-- The kind and name of a key under the prefix (nil when it has not both).
local function split(disc, key)
    local rest = key:sub(#disc.prefix + 2)
    return rest:match("^([^:]+):(.+)$")
end

------------------------------------------------------------------------
-- Registrations

-- Writes one registration with a fresh TTL.
local function write_registration(disc, key, value)
    disc.commands.send(report("register " .. key), "SET", key, value, "PX", disc.ttl_ms)
end

-- Writes every registration again (every refresh_ms, and on each connect).
local function refresh_registrations(disc)
    for key, value in pairs(disc.registered) do write_registration(disc, key, value) end
end

------------------------------------------------------------------------
-- Watchers: what is known of each watched kind

-- The watch of a kind (nil when not watched); `name` is no longer missing there.
local function settle(disc, kind, name)
    local watch = disc.watchers[kind]
    if watch then watch.missing_since[name] = nil end
    return watch
end

-- kind/name exists with `value`: on_add when it is new or changed.
local function seen(disc, kind, name, value)
    local watch = settle(disc, kind, name)
    if not watch or watch.known[name] == value then return end
    watch.known[name] = value
    if watch.on_add then watch.on_add(name, value) end
end

-- kind/name is gone: on_remove when it was known.
local function gone(disc, kind, name)
    local watch = settle(disc, kind, name)
    if not watch then return end
    local value = watch.known[name]
    if value == nil then return end
    watch.known[name] = nil
    if watch.on_remove then watch.on_remove(name, value) end
end

-- grace_ms after a name went missing (at `since`): if it is still missing
-- since then, a GET decides (an error, logged, leaves it to the next scan).
local function recheck_missing(disc, kind, watch, name, since)
    if watch.missing_since[name] ~= since or disc.watchers[kind] ~= watch then return end
    disc.commands.send(function(value, err)
        if err then return report("re-read " .. name .. " of " .. kind)(nil, err) end
        if value then return seen(disc, kind, name, value) end
        if watch.missing_since[name] then gone(disc, kind, name) end
    end, "GET", key_of(disc, kind, name))
end

-- A known name absent from a scan: removed once it stayed absent for grace_ms.
local function missing(disc, kind, name)
    local watch = disc.watchers[kind]
    if watch.missing_since[name] then return end
    local since = luna.get_time_ms()
    watch.missing_since[name] = since
    luna.timer(disc.grace_ms, function() recheck_missing(disc, kind, watch, name, since) end)
end

------------------------------------------------------------------------
-- Scans: SCAN every key of a kind, GET each, then reconcile what is known
-- with what exists. A scan cut short by an outage removes nothing.

-- The scan found every key: each known name it did not find is missing.
local function scan_done(disc, scan)
    for name in pairs(disc.watchers[scan.kind].known) do
        if scan.found[name] == nil then missing(disc, scan.kind, name) end
    end
end

-- Asks for the page at `cursor`, or ends the scan after the last page ("0").
local function next_page(disc, scan, cursor)
    if cursor == "0" then return scan_done(disc, scan) end
    disc.commands.send(scan.on_page, "SCAN", cursor, "MATCH", scan.pattern, "COUNT", SCAN_COUNT)
end

-- The value of one key of a page; the next page once the whole page answered.
local function scan_got(disc, scan, key, value, cursor)
    local _, name = split(disc, key)
    if value and name then
        scan.found[name] = value
        seen(disc, scan.kind, name, value)
    end
    scan.waiting = scan.waiting - 1
    if scan.waiting == 0 then next_page(disc, scan, cursor) end
end

-- Errors of a command the client gives when Redis is gone (or the client
-- closed): a scan they cut short removes nothing.
local OUTAGE = { ["redis-unavailable"] = true, ["connection-lost"] = true, timeout = true, closed = true }

-- A page of SCAN: { cursor, keys }; GETs each key. A key that cannot be
-- read (not a string, say) counts as absent, so the scan still ends.
local function scan_page(disc, scan, reply, err)
    if not reply then
        if err ~= "redis-unavailable" then log.warn("discovery: SCAN failed: " .. tostring(err)) end
        return
    end
    local cursor, keys = type(reply) == "table" and reply[1], type(reply) == "table" and reply[2]
    if type(cursor) ~= "string" or type(keys) ~= "table" then
        return log.warn("discovery: SCAN " .. scan.pattern .. " gave an unexpected reply (" .. type(reply) .. "); the re-scan tries again")
    end
    scan.waiting = #keys
    if #keys == 0 then return next_page(disc, scan, cursor) end
    for _, key in ipairs(keys) do
        disc.commands.send(function(value, get_err)
            if OUTAGE[get_err] then return end
            if get_err then
                -- Logged once per key, not on every re-scan.
                if not disc.unreadable[key] then
                    disc.unreadable[key] = true
                    log.warn("discovery: cannot read " .. tostring(key) .. " (" .. get_err .. "): taken as absent")
                end
                value = nil
            elseif disc.unreadable[key] then
                disc.unreadable[key] = nil
            end
            scan_got(disc, scan, key, value, cursor)
        end, "GET", key)
    end
end

-- Scans one watched kind.
local function rescan(disc, kind)
    local scan = { kind = kind, pattern = key_of(disc, kind, "*"), found = {}, waiting = 0 }
    function scan.on_page(reply, err) return scan_page(disc, scan, reply, err) end
    disc.commands.send(scan.on_page, "SCAN", "0", "MATCH", scan.pattern, "COUNT", SCAN_COUNT)
end

-- Scans every watched kind (every rescan_ms, and on each connect).
local function rescan_all(disc)
    for kind in pairs(disc.watchers) do rescan(disc, kind) end
end

------------------------------------------------------------------------
-- Redis connections and keyspace events

-- The notify-keyspace-events flags to set for `flags`: keyspace events (K)
-- of generic, string and expiry commands (g$x, or A for all).
local function wanted_flags(flags)
    local wanted = flags
    if not flags:find("K") then wanted = wanted .. "K" end
    if not flags:find("A") then
        for flag in ("g$x"):gmatch(".") do
            if not flags:find(flag, 1, true) then wanted = wanted .. flag end
        end
    end
    return wanted
end

-- CONFIG SET was refused: said once, the re-scan finds changes instead.
local function notifications_refused(disc, err)
    if disc.notifications_warned then return end
    disc.notifications_warned = true
    log.warn("discovery: keyspace notifications are off and CONFIG SET is refused (" .. err
        .. "); changes are found by the re-scan every " .. disc.rescan_ms
        .. " ms. Set notify-keyspace-events to 'Kg$x' on the server.")
end

-- Turns on the keyspace notifications discovery listens to, when missing.
local function enable_notifications(disc)
    disc.commands.send(function(reply)
        local flags = reply and reply[2] or ""
        local wanted = wanted_flags(flags)
        if wanted == flags then return end
        disc.commands.send(function(_, err)
            if err then notifications_refused(disc, err) end
        end, "CONFIG", "SET", "notify-keyspace-events", wanted)
    end, "CONFIG", "GET", "notify-keyspace-events")
end

-- A keyspace event: a lease key freed, or a watched name set or gone.
local function on_event(disc, channel, event)
    local key = channel:match("^__keyspace@%d+__:(.*)$")
    if not key then return end
    local lease = disc.leases[key]
    if lease then
        if event == "del" or event == "expired" then leases.try_acquire(disc, lease) end
        return
    end
    local kind, name = split(disc, key)
    if not kind or not disc.watchers[kind] then return end
    if event == "set" then
        disc.commands.send(function(value, err)
            if err then return report("read " .. key)(nil, err) end
            if value then seen(disc, kind, name, value) end
        end, "GET", key)
    elseif event == "del" or event == "expired" then
        gone(disc, kind, name)
    end
end

-- The command client is (again) ready: write, scan and renew everything.
local function on_ready(disc)
    -- After a reconnect, leases wait a TTL before contesting (lease.lua).
    if disc.ever_ready then disc.reconnected_at = luna.get_time_ms() end
    disc.ever_ready = true
    enable_notifications(disc)
    refresh_registrations(disc)
    rescan_all(disc)
    for _, lease in pairs(disc.leases) do leases.renew(disc, lease) end
end

-- Opens the command client and the client subscribed to keyspace events.
local function connect(disc, redis_config)
    local function client_config(name)
        return {
            host = redis_config.host, port = redis_config.port, password = redis_config.password,
            username = redis_config.username, db = disc.db, name = name,
        }
    end
    local commands = client_config("discovery")
    commands.on_ready = function() on_ready(disc) end
    disc.commands = redis.connect(commands)
    local events = client_config("discovery events")
    events.on_message = function(channel, event) on_event(disc, channel, event) end
    disc.events = redis.connect(events)
    disc.events.psubscribe("__keyspace@" .. disc.db .. "__:" .. disc.prefix .. ":*")
end

------------------------------------------------------------------------
-- The public API (see the doc comments in M.start)

-- Publishes kind/name -> value, written again every refresh_ms.
local function register(disc, kind, name, value)
    local key = key_of(disc, kind, name)
    disc.registered[key] = tostring(value)
    write_registration(disc, key, disc.registered[key])
end

-- Follows a kind (replacing an earlier watch of it); returns its table of known names.
local function watch(disc, kind, on_add, on_remove)
    disc.watchers[kind] = { on_add = on_add, on_remove = on_remove, known = {}, missing_since = {} }
    if disc.commands.state == "ready" then rescan(disc, kind) end
    return disc.watchers[kind].known
end

-- A new lease `prefix:lease:name`, contested now.
local function lease(disc, name, id, options)
    local new = leases.new(disc, key_of(disc, "lease", name), id, options or {})
    disc.leases[new.key] = new
    leases.try_acquire(disc, new)
    return new
end

-- Deletes our keys, releases our leases and stops listening (a graceful stop).
local function stop(disc)
    disc.stopped = true
    disc.refresher.cancel()
    disc.rescanner.cancel()
    for key in pairs(disc.registered) do disc.commands.send(report("delete " .. key), "DEL", key) end
    disc.registered = {}
    for _, held in pairs(disc.leases) do leases.release(disc, held) end
    disc.events.close()
end

-- A lease whose holder is its node's group master on every router.
local function master_lease(disc, node, options)
    options = options or {}
    local group = luna.service_group(node.id)
    return lease(disc, "master:" .. group, node.name, {
        ttl_ms = options.ttl_ms,
        on_promote = function()
            node.claim_master()
            if options.on_promote then options.on_promote() end
        end,
        on_demote = function(why)
            node.release_master()
            if options.on_demote then options.on_demote(why) end
        end,
    })
end

--- Starts discovery; see the file header.
function M.start(config)
    config = config or {}
    local ttl_ms = config.ttl_ms or 3000
    local redis_config = config.redis or {}
    local disc = {
        prefix = config.prefix or "luna",
        ttl_ms = ttl_ms,
        rescan_ms = config.rescan_ms or 5000,
        grace_ms = config.grace_ms or ttl_ms,
        db = redis_config.db or 0,
        registered = {}, -- key -> value
        watchers = {}, -- kind -> { on_add, on_remove, known = { name -> value }, missing_since = { name -> ms } }
        leases = {}, -- key -> lease
        unreadable = {}, -- key -> true: a scanned key whose GET failed (logged once)
        stopped = false,
        notifications_warned = false,
        ever_ready = false,
        reconnected_at = nil, -- ms of the last reconnect (leases wait a TTL after it)
        report = report,
    }
    connect(disc, redis_config)
    disc.refresher = luna.interval(config.refresh_ms or math.max(50, ttl_ms // 3), function()
        refresh_registrations(disc)
    end)
    disc.rescanner = luna.interval(disc.rescan_ms, function() rescan_all(disc) end)

    local d = { prefix = disc.prefix, redis = disc.commands }

    --- Publishes kind/name -> value while this process lives.
    function d.register(kind, name, value) return register(disc, kind, name, value) end

    --- Follows every name of a kind: on_add(name, value), on_remove(name, value).
    function d.watch(kind, on_add, on_remove) return watch(disc, kind, on_add, on_remove) end

    --- Competes for the lease `name` as `id`: at most one holder at a time.
    --- options: ttl_ms, margin_ms (default max(ttl/10, 20)), on_promote(), on_demote(reason).
    --- lease.held tells whether we hold it; lease.is_held() also checks the deadline.
    function d.lease(name, id, options) return lease(disc, name, id, options) end

    --- Deletes this process's keys and releases its leases (graceful stop).
    function d.stop() return stop(disc) end

    --- Keeps a luna.cluster node connected to every router registered as "router".
    function d.follow_routers(node)
        return watch(disc, "router", function(_, address) node.add_router(address) end,
            function(_, address) node.remove_router(address) end)
    end

    --- Makes a luna.cluster node compete for the master lease of its group:
    --- the holder is master on every router (set_master).
    function d.master_lease(node, options) return master_lease(disc, node, options) end

    luna.at_exit(d.stop)
    return d
end

return M
