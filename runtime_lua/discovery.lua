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
-- Leases never overlap (docs/discovery.md explains the clock assumption):
-- the holder demotes itself by its own timer at (time the last successful
-- renew was sent) + ttl - margin, before Redis can expire the key, and after
-- a reconnect a non-holder waits a full TTL before contesting (a restarted
-- Redis may have lost the key while its holder still holds the lease).
local luna = luna
local log = luna.log
local redis = require("luna.redis")

local M = {}

-- Renews if the caller holds the lease, writes it again if Redis lost it
-- (restarted empty); 0 when another holds it.
local RENEW = [[
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
if not holder then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) return 1 end
return 0]]
-- Releases only if the caller still holds the lease.
local RELEASE = [[if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end]]

--- Starts discovery; see the file header.
function M.start(config)
    config = config or {}
    local prefix = config.prefix or "luna"
    local ttl_ms = config.ttl_ms or 3000
    local refresh_ms = config.refresh_ms or math.max(50, ttl_ms // 3)
    local rescan_ms = config.rescan_ms or 5000
    local grace_ms = config.grace_ms or ttl_ms
    local redis_config = config.redis or {}
    local db_index = redis_config.db or 0

    local d = { prefix = prefix }
    local registered = {} -- key -> value
    local watchers = {} -- kind -> { on_add, on_remove, known = { name -> value } }
    local leases = {} -- key -> lease
    local stopped = false
    local notifications_warned = false
    local ever_ready = false
    local contest_after = 0 -- non-holders do not try to acquire leases before this time (ms)

    local function key_of(kind, name) return prefix .. ":" .. kind .. ":" .. name end

    local function split(key)
        local rest = key:sub(#prefix + 2)
        return rest:match("^([^:]+):(.+)$")
    end

    local commands
    local events
    local missing

    -- A command callback that reports a failure (an outage is reported by
    -- the Redis client itself, once).
    local function report(what)
        return function(_, err)
            if err and err ~= "redis-unavailable" then log.warn("discovery: cannot " .. what .. ": " .. err) end
        end
    end

    local function refresh_registrations()
        for key, value in pairs(registered) do
            commands.send(report("register " .. key), "SET", key, value, "PX", ttl_ms)
        end
    end

    local function seen(kind, name, value)
        local watch = watchers[kind]
        if not watch then return end
        watch.missing_since[name] = nil
        if watch.known[name] ~= value then
            watch.known[name] = value
            if watch.on_add then watch.on_add(name, value) end
        end
    end

    local function gone(kind, name)
        local watch = watchers[kind]
        if not watch then return end
        watch.missing_since[name] = nil
        local value = watch.known[name]
        if value ~= nil then
            watch.known[name] = nil
            if watch.on_remove then watch.on_remove(name, value) end
        end
    end

    -- A known name absent from a scan: removed once it stayed absent for grace_ms.
    function missing(kind, name)
        local watch = watchers[kind]
        if watch.missing_since[name] then return end
        watch.missing_since[name] = luna.get_time_ms()
        luna.timer(grace_ms, function()
            if watch.missing_since[name] == nil or watchers[kind] ~= watch then return end
            commands.send(function(value, err)
                if err then return end -- unknown: the next scan decides
                if value then return seen(kind, name, value) end
                if watch.missing_since[name] then gone(kind, name) end
            end, "GET", key_of(kind, name))
        end)
    end

    -- SCAN every key of a kind, then reconcile what is known with what exists.
    -- A scan cut short by an outage removes nothing.
    local function rescan(kind)
        local pattern = key_of(kind, "*")
        local found = {}
        local page
        local function finish()
            local watch = watchers[kind]
            for name in pairs(watch.known) do
                if found[name] == nil then missing(kind, name) end
            end
        end
        local function fetch(keys, cursor)
            local function next_page()
                if cursor ~= "0" then return commands.send(page, "SCAN", cursor, "MATCH", pattern, "COUNT", 200) end
                finish()
            end
            local waiting = #keys
            if waiting == 0 then return next_page() end
            for _, key in ipairs(keys) do
                commands.send(function(value, err)
                    if err then return end
                    local _, name = split(key)
                    if value and name then
                        found[name] = value
                        seen(kind, name, value)
                    end
                    waiting = waiting - 1
                    if waiting == 0 then next_page() end
                end, "GET", key)
            end
        end
        page = function(reply, err)
            if not reply then
                if err ~= "redis-unavailable" then log.warn("discovery: SCAN failed: " .. tostring(err)) end
                return
            end
            fetch(reply[2] or {}, reply[1])
        end
        commands.send(page, "SCAN", "0", "MATCH", pattern, "COUNT", 200)
    end

    local function rescan_all()
        for kind in pairs(watchers) do rescan(kind) end
    end

    local function enable_notifications()
        commands.send(function(reply, err)
            local flags = reply and reply[2] or ""
            local wanted = flags
            if not flags:find("K") then wanted = wanted .. "K" end
            if not flags:find("A") then
                for flag in ("g$x"):gmatch(".") do
                    if not flags:find(flag, 1, true) then wanted = wanted .. flag end
                end
            end
            if wanted == flags then return end
            commands.send(function(_, set_err)
                if set_err and not notifications_warned then
                    notifications_warned = true
                    log.warn("discovery: keyspace notifications are off and CONFIG SET is refused (" .. set_err
                        .. "); changes are found by the re-scan every " .. rescan_ms .. " ms. Set notify-keyspace-events to 'Kg$x' on the server.")
                end
            end, "CONFIG", "SET", "notify-keyspace-events", wanted)
        end, "CONFIG", "GET", "notify-keyspace-events")
    end

    local try_acquire, renew

    local function on_event(channel, event)
        local key = channel:match("^__keyspace@%d+__:(.*)$")
        if not key then return end
        local lease = leases[key]
        if lease then
            if event == "del" or event == "expired" then try_acquire(lease) end
            return
        end
        local kind, name = split(key)
        if not kind or not watchers[kind] then return end
        if event == "set" then
            commands.send(function(value)
                if value then seen(kind, name, value) end
            end, "GET", key)
        elseif event == "del" or event == "expired" then
            gone(kind, name)
        end
    end

    commands = redis.connect({
        host = redis_config.host, port = redis_config.port, password = redis_config.password,
        username = redis_config.username, db = db_index, name = "discovery",
        on_ready = function()
            if ever_ready then contest_after = luna.get_time_ms() + ttl_ms end
            ever_ready = true
            enable_notifications()
            refresh_registrations()
            rescan_all()
            for _, lease in pairs(leases) do renew(lease) end
        end,
    })
    events = redis.connect({
        host = redis_config.host, port = redis_config.port, password = redis_config.password,
        username = redis_config.username, db = db_index, name = "discovery events",
        on_message = on_event,
    })
    events.psubscribe("__keyspace@" .. db_index .. "__:" .. prefix .. ":*")

    local refresher = luna.interval(refresh_ms, refresh_registrations)
    local rescanner = luna.interval(rescan_ms, rescan_all)

    --- Publishes kind/name -> value while this process lives.
    function d.register(kind, name, value)
        local key = key_of(kind, name)
        registered[key] = tostring(value)
        commands.send(report("register " .. key), "SET", key, registered[key], "PX", ttl_ms)
    end

    --- Follows every name of a kind: on_add(name, value), on_remove(name, value).
    function d.watch(kind, on_add, on_remove)
        watchers[kind] = { on_add = on_add, on_remove = on_remove, known = {}, missing_since = {} }
        if commands.state == "ready" then rescan(kind) end
        return watchers[kind].known
    end

    local function demote(lease, why)
        if lease.demote_timer then lease.demote_timer.cancel() end
        lease.demote_timer = nil
        if not lease.held then return end
        lease.held = false
        log.warn("discovery: " .. lease.id .. " lost the lease " .. lease.key .. " (" .. why .. ")")
        if lease.on_demote then lease.on_demote(why) end
    end

    -- The lease is ours until `sent_at + ttl - margin` (sent_at: when the
    -- command that set or renewed it was sent): a timer demotes us then.
    local function hold_until(lease, sent_at)
        lease.deadline = sent_at + lease.ttl_ms - lease.margin_ms
        if lease.demote_timer then lease.demote_timer.cancel() end
        lease.demote_timer = luna.timer(math.max(0, lease.deadline - luna.get_time_ms()), function()
            lease.demote_timer = nil
            demote(lease, "not renewed in time")
        end)
    end

    local function promote(lease, sent_at)
        lease.held = true
        hold_until(lease, sent_at)
        log.info("discovery: " .. lease.id .. " holds the lease " .. lease.key)
        if lease.on_promote then lease.on_promote() end
    end

    function try_acquire(lease)
        if lease.held or stopped or lease.released then return end
        if luna.get_time_ms() < contest_after then return end -- renewed on its tick; tried again then
        local sent_at = luna.get_time_ms()
        commands.send(function(reply)
            if reply == "OK" and not lease.held and sent_at + lease.ttl_ms - lease.margin_ms > luna.get_time_ms() then
                promote(lease, sent_at)
            end
        end, "SET", lease.key, lease.id, "NX", "PX", lease.ttl_ms)
    end

    function renew(lease)
        if not lease.held then return try_acquire(lease) end
        local sent_at = luna.get_time_ms()
        commands.send(function(reply)
            if not lease.held then return end
            if reply == 1 then
                hold_until(lease, sent_at)
            elseif reply == 0 then
                demote(lease, "held by another")
            end
        end, "EVAL", RENEW, 1, lease.key, lease.id, lease.ttl_ms)
    end

    --- Competes for the lease `name` as `id`: at most one holder at a time.
    --- options: ttl_ms, margin_ms (default max(ttl/10, 20)), on_promote(), on_demote(reason).
    --- lease.held tells whether we hold it; lease.is_held() also checks the deadline.
    function d.lease(name, id, options)
        options = options or {}
        local lease_ttl = options.ttl_ms or ttl_ms
        local lease = {
            key = key_of("lease", name), id = tostring(id), held = false,
            ttl_ms = lease_ttl, margin_ms = options.margin_ms or math.max(lease_ttl // 10, 20),
            on_promote = options.on_promote, on_demote = options.on_demote,
        }
        function lease.is_held()
            return lease.held and luna.get_time_ms() < lease.deadline
        end
        leases[lease.key] = lease
        lease.timer = luna.interval(math.max(20, lease.ttl_ms // 3), function() renew(lease) end)
        try_acquire(lease)
        return lease
    end

    --- Deletes this process's keys and releases its leases (graceful stop).
    function d.stop()
        stopped = true
        refresher.cancel()
        rescanner.cancel()
        for key in pairs(registered) do commands.send(report("delete " .. key), "DEL", key) end
        registered = {}
        for _, lease in pairs(leases) do
            lease.timer.cancel()
            lease.released = true
            if lease.held then
                commands.send(report("release " .. lease.key), "EVAL", RELEASE, 1, lease.key, lease.id)
                demote(lease, "released")
            end
        end
        events.close()
    end

    --- Keeps a luna.cluster node connected to every router registered as "router".
    function d.follow_routers(node)
        return d.watch("router", function(_, address) node.add_router(address) end,
            function(_, address) node.remove_router(address) end)
    end

    --- Makes a luna.cluster node compete for the master lease of its group:
    --- the holder is master on every router (set_master).
    function d.master_lease(node, options)
        options = options or {}
        local group = luna.service_group(node.id)
        return d.lease("master:" .. group, node.name, {
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

    luna.at_exit(d.stop)
    d.redis = commands
    return d
end

return M
