-- luna.router: a ready-to-run router of a star cluster.
--
-- As a script:   luna runtime_lua/router.lua --listen 127.0.0.1:7001 [--listen ...]
--                    [--heartbeat-ms 1000] [--keep-slots] [--stats-ms N]
--                    [--max-tracked-calls N] [--max-pending-input BYTES] [--frame-timeout-ms N] [--max-ids N]
--                    [--hash-mode GROUP=modulo|rendezvous] [--max-subscriptions N] [--max-topics N] [--max-retained-bytes N]
--                    [--secret-file PATH] [--handshake-timeout-ms N]
--                    [--tls-cert PEM --tls-key PEM [--tls-ca PEM [--tls-require-client-cert]]]
--                    [--redis HOST:PORT [--redis-db N] [--prefix P] [--name NAME] [--ttl-ms N]]
-- Links prove the cluster secret (LUNA_CLUSTER_SECRET, or the first line of
-- --secret-file) before anything else is accepted; with --tls-* they are TLS.
-- With --redis the router publishes its address (kind "router") so that
-- services using luna.discovery find it and drop it when it goes away
-- (the Redis password comes from LUNA_REDIS_PASSWORD, never the command line).
-- As a module:   require("luna.router").start{ listen = { "127.0.0.1:7001" } }
--
-- Services (see luna.cluster) register their ids; the router keeps the
-- route table from those registrations and removes a service whose
-- connection dies (or keeps its slot with token 0 with --keep-slots, so
-- hash keys of the other instances do not move). An id has one owner: a
-- registration of an id that another live link holds is refused with
-- "id-in-use". Forwards are passed on by the core without decoding them.
local luna = luna
local log = luna.log
local cluster = require("luna.cluster")
local console = require("luna.console") -- for is_loopback only

local M = {}

-- A service id from its number or its "group.index" name.
local function to_id(value)
    if type(value) == "string" then return luna.service_id(value) end
    return value
end

-- An id as "group.index" for log lines (anything else as text).
local function name_of(id)
    return (math.type(id) == "integer" and luna.service_name(id)) or tostring(id)
end

-- Tells every link that watches membership that `id` came or went.
local function announce(router, id, up)
    for _, watcher in pairs(router.watchers) do watcher.call("@member", id, up) end
end

-- Every id held by a live link, sorted.
local function members(router)
    local list = {}
    for id in pairs(router.owners) do list[#list + 1] = id end
    table.sort(list)
    return list
end

-- The functions below take `link`, the state of one accepted connection:
-- its router, stream, peer address, the ids it holds and the refusals
-- logged for it.

-- Logs a refusal once per subject and reason (a refused node retries), then
-- answers it with `reply`.
local function refuse_once(link, subject, what, reason, reply)
    if link.refusals[subject] ~= reason then
        link.refusals[subject] = reason
        log.warn("router: refused " .. what .. " from " .. link.peer .. ": " .. reason)
    end
    link.stream.call(reply, subject, reason)
end

-- Refuses a registration.
local function refuse(link, id, reason)
    refuse_once(link, id, name_of(id), reason, "@refused")
end

-- @register id is_master: routes the id to this link unless another live link holds it.
local function register(link, raw_id, is_master)
    local router, stream = link.router, link.stream
    local id = to_id(raw_id)
    if math.type(id) ~= "integer" or not luna.service_name(id) then
        log.warn("router: bad registration " .. tostring(raw_id) .. " from " .. link.peer .. ": invalid-param")
        return stream.call("@refused", raw_id, "invalid-param")
    end
    local owner = router.owners[id]
    if owner and owner ~= stream.token then return refuse(link, id, "id-in-use") end
    local ok, err = router.mgr.route(id, stream.token, is_master)
    if not ok then return refuse(link, id, err) end
    link.refusals[id] = nil
    link.ids[id], router.owners[id] = true, stream.token
    stream.call("@registered", id)
    if not owner then
        log.info("router: " .. name_of(id) .. " registered from " .. link.peer)
        announce(router, id, true)
    end
end

-- @unregister id: drops the route if this link holds it; confirmed either way.
local function unregister(link, raw_id)
    local router, stream = link.router, link.stream
    local id = to_id(raw_id)
    if id and router.owners[id] == stream.token then
        router.mgr.route(id, nil)
        router.owners[id], link.ids[id] = nil, nil
        log.info("router: " .. name_of(id) .. " unregistered")
        announce(router, id, false)
    end
    stream.call("@unregistered", raw_id)
end

-- @set_master group id: an explicit master (id 0 releases this link's claim).
local function set_master(link, group, id)
    local router, token = link.router, link.stream.token
    local masters = router.masters
    if id == 0 then
        -- A release clears the claim only if it is still this link's.
        if masters[group] == token then
            masters[group] = nil
            router.mgr.set_master(group, 0)
            log.info("router: group " .. tostring(group) .. " has no explicit master now")
        end
    elseif math.type(id) ~= "integer" or luna.service_group(id) ~= group then
        log.warn("router: @set_master from " .. link.peer .. " names " .. tostring(id) .. ", not a service of group "
            .. tostring(group) .. ": ignored")
    elseif router.owners[id] == token then
        masters[group] = token
        router.mgr.set_master(group, token)
        log.info("router: master of group " .. tostring(group) .. " is " .. name_of(id))
    else
        log.warn("router: @set_master from " .. link.peer .. " for a service it does not hold: " .. tostring(id))
    end
end

-- @watch_members: the full list now, then every change.
local function watch_members(link)
    link.router.watchers[link.stream.token] = link.stream
    link.stream.call("@members", members(link.router))
end

-- The link died: its claims and routes go (or keep their slot with --keep-slots).
local function link_gone(link, err)
    local router, token = link.router, link.stream.token
    router.watchers[token] = nil
    for group, master in pairs(router.masters) do
        if master == token then
            router.masters[group] = nil
            router.mgr.set_master(group, 0) -- the core must not keep sending to the dead link
        end
    end
    for id in pairs(link.ids) do
        if router.owners[id] == token then
            router.mgr.route(id, router.config.keep_slots and 0 or nil)
            router.owners[id] = nil
            log.info("router: " .. name_of(id) .. " gone (" .. err .. ")")
            announce(router, id, false)
        end
    end
end

-- Subscribes the link to a topic (the core keeps the table and fans
-- publishes out); a refusal is answered and logged once per topic.
local function subscribe(link, topic)
    local ok, err = link.router.mgr.subscribe(topic, link.stream.token)
    if ok then return end
    refuse_once(link, topic, "a subscription to " .. tostring(topic), err, "@subscribe_failed")
end

-- Unsubscribes the link from a topic (not subscribed: nothing to do); a bad topic is logged.
local function unsubscribe(link, topic)
    local ok, err, detail = link.router.mgr.unsubscribe(topic, link.stream.token)
    if ok == nil then
        log.warn("router: bad @unsubscribe " .. tostring(topic) .. " from " .. link.peer .. ": " .. tostring(err)
            .. " " .. tostring(detail))
    end
end

-- One control message of a link.
local function on_link_message(link, msg, a, b)
    if msg == "@ping" then
        link.stream.call("@pong")
    elseif msg == "@register" then
        register(link, a, b)
    elseif msg == "@unregister" then
        unregister(link, a)
    elseif msg == "@set_master" then
        set_master(link, a, b)
    elseif msg == "@watch_members" then
        watch_members(link)
    elseif msg == "@subscribe" then
        subscribe(link, a)
    elseif msg == "@unsubscribe" then
        unsubscribe(link, a)
    else
        log.warn("router: unknown message " .. tostring(msg) .. " from " .. link.peer)
    end
end

-- Serves the control messages of one accepted link.
local function serve_link(router, stream)
    local link = {
        router = router, stream = stream, peer = stream.ip .. ":" .. stream.port,
        ids = {}, -- ids this link holds
        refusals = {}, -- id -> last reason logged (a refused node retries: log once per change)
    }
    stream.set_timeout(router.dead_after_ms)
    stream.on_call = function(msg, a, b) return on_link_message(link, msg, a, b) end
    stream.on_error = function(err) return link_gone(link, err) end
end

local LIMITS = {
    max_tracked_calls = "set_max_tracked_calls",
    max_pending_input = "set_max_pending_input",
    frame_timeout_ms = "set_frame_timeout",
    max_ids = "set_max_ids",
    max_subscriptions = "set_max_subscriptions",
    max_topics = "set_max_topics",
    max_retained_bytes = "set_max_retained_bytes",
}

-- Per-group hash modes (`hash_modes = { [group] = "rendezvous" }`); every
-- router of a cluster must be given the same ones.
local function set_hash_modes(mgr, modes)
    for group, mode in pairs(modes or {}) do
        local ok, err, detail = mgr.set_hash_mode(group, mode)
        if not ok then error("luna.router.start: hash mode of group " .. tostring(group) .. ": " .. err .. " " .. tostring(detail), 3) end
        log.info("router: group " .. group .. " hashes keys by " .. mode)
    end
end

-- Listens on every address; an address that cannot be opened is an error.
local function open_listeners(router, listen, options)
    for _, address in ipairs(listen) do
        local host, port = cluster.parse_address(address)
        if not host then error("luna.router.start: " .. port, 3) end
        if not options.secret and not console.is_loopback(host) then
            log.warn("router: listening on " .. host .. ":" .. port .. " without a cluster secret: anyone who can "
                .. "reach this port can register as any service. Set LUNA_CLUSTER_SECRET (or --secret-file).")
        end
        local listener, err, detail = router.mgr.listen(host, port, options)
        if not listener then
            error("luna.router: cannot listen on " .. host .. ":" .. port .. ": " .. err .. " " .. tostring(detail), 3)
        end
        listener.on_accept = function(stream) serve_link(router, stream) end
        router.listeners[#router.listeners + 1] = listener
        log.info("router listening on " .. listener.ip .. ":" .. listener.port)
        print("listening " .. listener.ip .. ":" .. listener.port)
    end
end

-- Registers the router's address in Redis (kind "router") for luna.discovery.
local function publish_in_redis(router, config)
    local host, port = cluster.parse_address(config.redis)
    if not host then error("luna.router.start: --redis " .. port, 3) end
    local discovery = require("luna.discovery").start{
        redis = { host = host, port = port, password = config.redis_password,
                  db = config.redis_db },
        prefix = config.prefix, ttl_ms = config.ttl_ms,
    }
    local first = router.listeners[1]
    local address = first.ip .. ":" .. first.port
    discovery.register("router", config.name or address, address)
    router.discovery = discovery
end

-- Logs the manager's forwarding counters (--stats-ms).
local function log_stats(mgr)
    local s = mgr.stats()
    log.info(string.format("router stats: forwarded=%d forward_failed=%d tracked_calls=%d open=%d bad_packages=%d"
        .. " calls_refused=%d recv_buffer_full=%d frame_timeouts=%d ids_refused=%d pending_input=%d"
        .. " published=%d published_unheard=%d topics=%d",
        s.forwarded, s.forward_failed, s.tracked_calls, s.open, s.bad_packages,
        s.calls_refused, s.recv_buffer_full, s.frame_timeouts, s.ids_refused, s.pending_input,
        s.published, s.published_unheard, s.topics))
end

--- Starts a router; returns a table with the manager, the listeners and the owners of ids.
function M.start(config)
    local listen = config.listen
    if type(listen) ~= "table" or type(listen.host) == "string" then listen = { listen } end
    if #listen == 0 then error("luna.router.start: at least one listen address is required", 2) end
    local heartbeat_ms = config.heartbeat_ms or 1000
    local mgr = luna.create_socket_mgr(config.max_fd or 65536)
    for field, setter in pairs(LIMITS) do
        if config[field] then
            local ok, err = mgr[setter](config[field])
            if not ok then error("luna.router.start: " .. field .. ": " .. err, 2) end
        end
    end
    set_hash_modes(mgr, config.hash_modes)
    local router = {
        mgr = mgr, listeners = {}, config = config,
        owners = {}, -- service id -> token of the link that holds it
        masters = {}, -- group -> token of the explicit master
        watchers = {}, -- token -> stream of links told of every registration and departure
        dead_after_ms = config.dead_after_ms or heartbeat_ms * 3,
    }
    local options = {
        secret = cluster.secret_of(config),
        tls = config.tls,
        handshake_timeout_ms = config.handshake_timeout_ms,
    }
    open_listeners(router, listen, options)
    if config.redis then publish_in_redis(router, config) end
    if config.stats_ms then luna.interval(config.stats_ms, function() log_stats(mgr) end) end
    return router
end

local NUMBER_FLAGS = {
    ["--heartbeat-ms"] = "heartbeat_ms", ["--max-fd"] = "max_fd", ["--stats-ms"] = "stats_ms",
    ["--redis-db"] = "redis_db", ["--ttl-ms"] = "ttl_ms",
    ["--max-tracked-calls"] = "max_tracked_calls", ["--max-pending-input"] = "max_pending_input",
    ["--frame-timeout-ms"] = "frame_timeout_ms", ["--max-ids"] = "max_ids",
    ["--handshake-timeout-ms"] = "handshake_timeout_ms",
    ["--max-subscriptions"] = "max_subscriptions", ["--max-topics"] = "max_topics",
    ["--max-retained-bytes"] = "max_retained_bytes",
}
local TEXT_FLAGS = { ["--redis"] = "redis", ["--prefix"] = "prefix", ["--name"] = "name", ["--secret-file"] = "secret_file" }
local TLS_FLAGS = { ["--tls-cert"] = "cert", ["--tls-key"] = "key", ["--tls-ca"] = "ca" }
local USAGE = "usage: --listen HOST:PORT [--listen ...] [--heartbeat-ms N] [--max-fd N] [--keep-slots] [--stats-ms N]"
    .. " [--max-tracked-calls N] [--max-pending-input BYTES] [--frame-timeout-ms N] [--max-ids N]"
    .. " [--hash-mode GROUP=modulo|rendezvous] [--max-subscriptions N] [--max-topics N] [--max-retained-bytes N]"
    .. " [--secret-file PATH] [--handshake-timeout-ms N] [--tls-cert PEM --tls-key PEM [--tls-ca PEM] [--tls-require-client-cert]]"
    .. " [--redis HOST:PORT] [--redis-db N] [--prefix P] [--name NAME] [--ttl-ms N]"

--- Parses the command line of the router script.
function M.parse_args(args)
    local config = { listen = {} }
    local i = 1
    while args[i] do
        local flag, value = args[i], args[i + 1]
        if flag == "--listen" then
            config.listen[#config.listen + 1] = value
            i = i + 2
        elseif NUMBER_FLAGS[flag] then
            local number = math.tointeger(tonumber(value))
            if not number or number < 0 then
                error("router: " .. flag .. " needs a whole number >= 0, got " .. tostring(value) .. " (" .. USAGE .. ")", 0)
            end
            config[NUMBER_FLAGS[flag]] = number
            i = i + 2
        elseif TEXT_FLAGS[flag] then
            if value == nil then error("router: " .. flag .. " needs a value (" .. USAGE .. ")", 0) end
            config[TEXT_FLAGS[flag]] = value
            i = i + 2
        elseif TLS_FLAGS[flag] then
            if value == nil then error("router: " .. flag .. " needs a file (" .. USAGE .. ")", 0) end
            config.tls = config.tls or {}
            config.tls[TLS_FLAGS[flag]] = value
            i = i + 2
        elseif flag == "--tls-require-client-cert" then
            config.tls = config.tls or {}
            config.tls.require_client_cert = true
            i = i + 1
        elseif flag == "--redis-password" then
            log.warn("router: --redis-password shows the password to every user of `ps`: set LUNA_REDIS_PASSWORD instead")
            config.redis_password = value
            i = i + 2
        elseif flag == "--hash-mode" then
            local group, mode = tostring(value):match("^(%d+)=(%a+)$")
            if not group then error("router: --hash-mode needs GROUP=MODE, e.g. 2=rendezvous (" .. USAGE .. ")", 0) end
            config.hash_modes = config.hash_modes or {}
            config.hash_modes[tonumber(group)] = mode
            i = i + 2
        elseif flag == "--keep-slots" then
            config.keep_slots = true
            i = i + 1
        else
            error("router: unknown argument " .. tostring(flag) .. " (" .. USAGE .. ")", 0)
        end
    end
    return config
end

-- Run as an entry script (import passes no arguments; require passes the module name).
if select("#", ...) == 0 then
    router = router or M.start(M.parse_args(luna.args))
end

return M
