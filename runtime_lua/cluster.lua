-- luna.cluster: a service's links to the routers of a star cluster.
--
--   local cluster = require("luna.cluster")
--   node = cluster.start{
--       id = "2.1",                                  -- or ids = {...}; luna.service_id(2, 1)
--       routers = { "127.0.0.1:7001", "127.0.0.1:7002" },
--       on_call = function(msg, ...) end,            -- messages routed to this service
--   }
--   node.forward_hash(2, account, "send_mail", account, text)      -- one-way
--   local unread, err = node.call_hash(2, account, "unread", account) -- in a coroutine
--
-- With `handlers = { name = function(...) end }` the node answers calls
-- (luna.rpc) and runs one-way messages named after a handler; anything else
-- goes to `on_call(msg, ...)`.
--
-- The node connects to every router and registers its ids on each. A link
-- is live only once the router answered every registration: a router that
-- accepts connections but does not answer (frozen, overloaded) is never
-- used. Heartbeats keep links checked; a router silent for 3 heartbeats is
-- dropped and reconnected with backoff. The node sends through ONE live
-- router, chosen at random only when the set of live routers changes, so
-- messages between two services keep their order. An id another live link
-- holds is refused by the router (`id-in-use`): the node logs it and retries
-- until the holder's link dies.
--
-- Calling cluster.start again with an id this process already runs (a hot
-- reload of the entry) returns the running node with the new handlers.
-- SIGTERM drains the nodes (node.drain) unless the script defines its own
-- on_quit_signal.
local luna = luna
local log = luna.log
local rpc = require("luna.rpc")
local trace_ids = require("luna.trace")
local traces, trace_key = trace_ids.by_coroutine, trace_ids.key
local membership = require("luna.membership")
local pubsub = require("luna.pubsub")

local M = {}

--- Milliseconds the default SIGTERM handler lets node.drain take.
M.drain_timeout_ms = 5000

local running = {} -- first id -> node, for reload-safe starts and draining on SIGTERM

--- The cluster secret of a config: `config.secret`, else the first line of
--- `config.secret_file`, else LUNA_CLUSTER_SECRET; nil when none is set.
function M.secret_of(config)
    if config.secret then return config.secret end
    if config.secret_file then
        local file, err = io.open(config.secret_file, "rb")
        if not file then error("luna.cluster: cannot read the secret file: " .. tostring(err), 0) end
        -- The first line, without its line end (also a Windows one).
        local secret = (file:read("l") or ""):gsub("\r$", "")
        file:close()
        if secret == "" then error("luna.cluster: the secret file " .. config.secret_file .. " is empty", 0) end
        return secret
    end
    local secret = os.getenv("LUNA_CLUSTER_SECRET")
    if secret == "" then return nil end
    return secret
end

--- Splits "host:port" (or "[v6]:port"); returns host, port or nil, err.
function M.parse_address(text)
    if type(text) == "table" then
        return text.host or text[1], tonumber(text.port or text[2])
    end
    local host, port = tostring(text):match("^%[([^%]]+)%]:(%d+)$")
    if not host then
        host, port = tostring(text):match("^([^:]+):(%d+)$")
    end
    if not host then
        return nil, "bad address '" .. tostring(text) .. "' (want host:port)"
    end
    return host, tonumber(port)
end

-- A service id from its number or name; an error (at `level`) when invalid.
local function to_id(id, level)
    local value = type(id) == "string" and luna.service_id(id) or id
    if math.type(value) ~= "integer" or not luna.service_name(value) then
        error("luna.cluster: bad service id " .. tostring(id), level or 3)
    end
    return value
end

-- The forward functions of a node and the mode each routes by.
local FORWARDS = {
    forward_target = "target", forward_master = "master", forward_random = "random",
    forward_broadcast = "broadcast", forward_hash = "hash",
}
-- Fields of the configuration a restart (hot reload) of cluster.start updates.
local HOOKS = { "on_call", "handlers", "on_forward_error", "on_router_change", "on_router_error" }

-- Picks the router messages go through: a random live one, again only when
-- the set of live routers changes.
local function pick_router(node)
    local live = {}
    for _, link in ipairs(node.links) do
        if link.state == "live" then live[#live + 1] = link end
    end
    local previous = node.current
    node.current = #live > 0 and live[math.random(#live)] or nil
    local current = node.current
    if current then
        node.warned_no_router = false
        log.info(node.name .. " sends through router " .. current.address)
    elseif previous then
        log.warn(node.name .. ": no live router")
    end
    if current ~= previous then membership.sync(node) end
    local hook = node.on_router_change
    if hook and current ~= previous then hook(current and current.stream, current and current.address) end
end

-- A problem on a link (refused registration, failed authentication): logged
-- and reported once per change, not per retry.
local function link_problem(node, link, err, why, id)
    link.state = err
    if link.problem == err then return end
    link.problem = err
    log.warn(node.name .. ": router " .. link.address .. " refused " .. (id and luna.service_name(id) or "us")
        .. ": " .. err .. (why and (" (" .. tostring(why) .. ")") or "") .. "; retrying")
    if node.on_router_error then node.on_router_error(link.address, err, why) end
end

local connect

-- Reconnects the link after its backoff (with jitter), doubling the backoff.
local function retry_later(node, link)
    if node.stopped or link.removed then return end
    local delay = link.backoff
    link.backoff = math.min(link.backoff * 2, node.backoff_max)
    -- Jitter keeps a restarted router from being hit by everyone at once.
    luna.timer(delay // 2 + math.random(delay // 2 + 1), function() connect(node, link) end)
end

-- The link broke: pick another router if it was live, reconnect later.
local function link_down(node, link, err)
    local was_live = link.state == "live"
    link.state, link.stream = link.problem or "down", nil
    if was_live then
        log.warn(node.name .. ": lost router " .. link.address .. " (" .. tostring(err) .. ")")
        pick_router(node)
    end
    retry_later(node, link)
end

-- Registers every id of the node (and its master claim) on a new link.
local function register_all(node, link)
    link.state = "registering"
    link.waiting = {}
    for _, id in ipairs(node.ids) do
        link.waiting[id] = true
        link.stream.call("@register", id, node.is_master)
    end
    if node.master_claimed then
        link.stream.call("@set_master", luna.service_group(node.master_claimed), node.master_claimed)
    end
end

-- The router confirmed an id: the link is live once all are.
local function registered(node, link, id)
    if not link.waiting or not link.waiting[id] then return end
    link.waiting[id] = nil
    if next(link.waiting) then return end
    link.waiting = nil
    link.state, link.problem, link.backoff, link.register_backoff = "live", nil, node.backoff_min, nil
    log.info(node.name .. ": connected to router " .. link.address .. " (registered)")
    pick_router(node)
end

-- The router refused an id (id-in-use...): reported, registered again after a backoff.
local function refused(node, link, id, reason)
    if not link.waiting or not link.waiting[id] then return end
    link_problem(node, link, tostring(reason), nil, id)
    local stream = link.stream
    local delay = link.register_backoff or node.backoff_min
    link.register_backoff = math.min(delay * 2, node.backoff_max, 1000) -- the holder may leave any moment
    luna.timer(delay, function()
        if link.stream == stream and link.waiting and link.waiting[id] and not node.draining then
            stream.call("@register", id, node.is_master)
        end
    end)
end

local on_router_message

-- The router's control messages by name (one table lookup per message):
-- handler(node, link, stream, ...).
local CONTROL = {
    ["@pong"] = function() end,
    ["@registered"] = function(node, link, _, id) registered(node, link, id) end,
    ["@refused"] = function(node, link, _, id, reason) refused(node, link, id, reason) end,
    ["@unregistered"] = function(_, link, _, id)
        if link.unregistering then link.unregistering[id] = nil end
    end,
}
for _, module in ipairs({ membership, pubsub }) do
    for name, handler in pairs(module.messages) do CONTROL[name] = handler end
end

-- A message from a router: control messages, calls, handlers, else on_call.
function on_router_message(node, link, stream, msg, ...)
    local control = CONTROL[msg]
    if control then return control(node, link, stream, ...) end
    if rpc.dispatch(stream, node.handlers, node.id, msg, ...) then return end
    local handler = node.on_call
    if handler then
        handler(msg, ...)
    else
        log.warn(node.name .. ": no handler for message " .. tostring(msg))
    end
end

-- A forward failed: to on_forward_error, else logged.
local function on_forward_error(node, err, mode, target, ...)
    local handler = node.on_forward_error
    if handler then
        handler(err, mode, target, ...)
    else
        local where = mode == "target" and luna.service_name(target) or ("group " .. target)
        log.warn(node.name .. ": forward " .. mode .. " to " .. where .. " failed: " .. err)
    end
end

-- Connects a link to its router and wires its callbacks.
function connect(node, link)
    if node.stopped or link.removed or link.stream then return end
    local stream, err, detail = node.mgr.connect(link.host, link.port, node.connect_timeout_ms, node.link_options)
    if not stream then
        log.warn(node.name .. ": cannot connect to router " .. link.address .. ": " .. err .. " " .. tostring(detail or ""))
        return retry_later(node, link)
    end
    link.stream, link.state = stream, "connecting"
    stream.on_connect = function(result, why)
        if result ~= "ok" then
            link.stream = nil
            if result == "auth-failed" or result == "tls-failed" then
                link_problem(node, link, result, why)
            else
                link.state = link.problem or "down"
            end
            return retry_later(node, link)
        end
        -- The router must answer within dead_after_ms (registrations, heartbeats) or the link is dropped.
        stream.set_timeout(node.dead_after_ms)
        if node.draining then return end
        register_all(node, link)
        membership.link_up(node, link)
        pubsub.link_up(node, link)
    end
    stream.on_call = function(msg, ...) return on_router_message(node, link, stream, msg, ...) end
    stream._on_rpc = rpc.call_server(stream, node, node.id)
    stream.on_call_failed = rpc.call_failed
    stream.on_broadcast_targets = rpc.broadcast_targets
    stream.on_forward_error = function(...) return on_forward_error(node, ...) end
    stream.on_error = function(reason, detail)
        -- An open link refused later: a plain link to a router that wants the
        -- secret, or (TLS 1.3) a client certificate the router rejected.
        if reason == "auth-failed" or reason == "tls-failed" then link_problem(node, link, reason, detail) end
        link_down(node, link, reason)
    end
end

-- Sends through the current router, or fails with no-route (logged once per outage).
local function via_current(node, what)
    local current = node.current
    if current then return current.stream end
    if not node.warned_no_router then
        node.warned_no_router = true
        log.warn(node.name .. ": no live router: " .. what .. " failed with no-route")
    end
    return nil
end

-- Sends a forward through the current router; a traced one (inside a
-- traced handler, or with rpc.tracing) goes as ("@trace", id, msg, ...),
-- which the receiving core unwraps (docs/protocol.md, section 9).
local function send_forward(node, name, ...)
    local stream = via_current(node, name)
    if not stream then return nil, "no-route" end
    local trace = traces[trace_key()]
    if trace == nil and rpc.tracing then trace = trace_ids.new_id() end
    if not trace then return stream[name](...) end
    return stream._tforward(FORWARDS[name], trace, ...)
end

-- The forward_* functions of a node (waiting for a route with wait_for_route).
local function add_forwards(node)
    for name, mode in pairs(FORWARDS) do
        node[name] = function(...)
            local target = ...
            if node.route_wait_ms and not membership.has_route(node, mode, target) then
                -- Hold it until the target registers (start-up ordering), or report no-route.
                local args = table.pack(...)
                local function fail(err)
                    local offset = name == "forward_hash" and 3 or 2
                    on_forward_error(node, err or "no-route", mode, target, table.unpack(args, offset, args.n))
                end
                -- Sent later, when nobody gets the result: a failure goes to on_forward_error.
                local function send()
                    local sent, err = send_forward(node, name, table.unpack(args, 1, args.n))
                    if not sent then fail(err) end
                end
                if membership.hold(node, mode, target, node.route_wait_ms, send, fail) then return 0 end
                return nil, "no-route"
            end
            return send_forward(node, name, ...)
        end
    end
end

-- The call functions of a node with one timeout (nil: rpc's default).
local function call_functions(node, timeout_ms)
    local function send(mode, target, key, method, ...)
        local stream = via_current(node, "a call")
        if not stream then return nil, "no-route" end
        if mode == "broadcast" then
            return rpc.broadcast_call(timeout_ms, stream, node.id, target, method, ...)
        end
        return rpc.routed_call(timeout_ms, stream, node.id, mode, target, key, method, ...)
    end
    -- With node.wait_for_route(ms), a call whose target has no route yet waits for it.
    local function routed(mode, target, key, method, ...)
        local wait_ms = node.route_wait_ms
        if not wait_ms then return send(mode, target, key, method, ...) end
        local deadline = luna.get_time_ms() + wait_ms
        while true do
            local left = deadline - luna.get_time_ms()
            if left <= 0 or not membership.wait_for_route(node, mode, target, left) then return nil, "no-route" end
            local results = table.pack(send(mode, target, key, method, ...))
            -- The router may not have the route the view shows yet: try again while time is left.
            if results[1] ~= nil or results[2] ~= "no-route" or luna.get_time_ms() >= deadline then
                return table.unpack(results, 1, results.n)
            end
            luna.sleep(20)
        end
    end
    return {
        call_target = function(id, ...) return routed("target", id, 0, ...) end,
        call_master = function(group, ...) return routed("master", group, 0, ...) end,
        call_random = function(group, ...) return routed("random", group, 0, ...) end,
        call_hash = function(group, key, ...) return routed("hash", group, key, ...) end,
        call_broadcast = function(group, ...) return routed("broadcast", group, 0, ...) end,
    }
end

-- Most node.timeout(ms) views a node keeps (one per distinct ms).
local MAX_TIMEOUT_VIEWS = 64

-- The call_* functions of a node, and node.timeout(ms) for other timeouts.
local function add_calls(node)
    for name, fn in pairs(call_functions(node, nil)) do node[name] = fn end
    local views, cached = {}, 0
    --- The call functions with a different timeout: node.timeout(500).call_hash(...).
    function node.timeout(ms)
        local view = views[ms]
        if view then return view end
        view = call_functions(node, ms)
        -- Kept for the first few timeouts only: one computed per call must not grow the node.
        if cached < MAX_TIMEOUT_VIEWS then
            views[ms], cached = view, cached + 1
        end
        return view
    end
end

-- Ends a drain: no more reconnects, then quit (or call on_done).
local function drained(node, on_done, why)
    if node.drain_timer then node.drain_timer.cancel() end
    node.stopped = true
    node.heartbeat.cancel()
    if why then log.warn(node.name .. ": drain timed out (" .. why .. "); quitting anyway") end
    log.info(node.name .. ": drained")
    if on_done then return on_done() end
    luna_quit_flag = true
end

-- What a drain still waits for, or nil when done.
local function drain_pending(node)
    for _, link in ipairs(node.links) do
        if link.stream and link.unregistering and next(link.unregistering) then
            return "router " .. link.address .. " has not confirmed the unregistration"
        end
    end
    local stats = rpc.stats()
    if stats.serving > 0 then return stats.serving .. " calls still being handled" end
    if stats.pending > 0 then return stats.pending .. " calls of ours still waiting for answers" end
    return nil
end

-- node.drain and node.stop.
local function add_lifecycle(node)
    --- Leaves the cluster gracefully: unregisters from every router (new
    --- calls go elsewhere), lets the calls in flight finish, then quits
    --- (or calls on_done() instead when given). Returns at once.
    function node.drain(timeout_ms, on_done)
        if node.draining then return end
        node.draining = true
        log.info(node.name .. ": draining")
        for _, link in ipairs(node.links) do
            if link.stream and link.state ~= "connecting" then
                link.unregistering = {}
                for _, id in ipairs(node.ids) do
                    link.unregistering[id] = true
                    link.stream.call("@unregister", id)
                end
            end
        end
        local deadline = luna.get_time_ms() + (timeout_ms or M.drain_timeout_ms)
        node.drain_timer = luna.interval(10, function()
            local waiting = drain_pending(node)
            if not waiting then return drained(node, on_done) end
            if luna.get_time_ms() >= deadline then drained(node, on_done, waiting) end
        end)
    end

    --- Leaves the cluster at once: unregisters and closes every router link.
    function node.stop()
        node.stopped = true
        node.heartbeat.cancel()
        if node.drain_timer then node.drain_timer.cancel() end
        for _, link in ipairs(node.links) do
            if link.stream then
                for _, id in ipairs(node.ids) do link.stream.call("@unregister", id) end
                link.stream.close()
            end
            link.state, link.stream = "down", nil
        end
        node.current = nil
        if running[node.id] == node then running[node.id] = nil end
    end
end

-- The functions that add, drop and inspect router links.
local function add_router_management(node)
    --- Adds a router (e.g. one found by discovery); true if it is new.
    function node.add_router(address)
        local host, port = M.parse_address(address)
        if not host then
            log.warn(node.name .. ": ignoring router: " .. port)
            return false
        end
        local canonical = host .. ":" .. port
        for _, link in ipairs(node.links) do
            if link.address == canonical then return false end
        end
        local link = { address = canonical, host = host, port = port, state = "down", backoff = node.backoff_min }
        node.links[#node.links + 1] = link
        connect(node, link)
        return true
    end

    --- Drops a router (e.g. its discovery key expired); true if it was known.
    function node.remove_router(address)
        local host, port = M.parse_address(address)
        local canonical = host and (host .. ":" .. port)
        for at, link in ipairs(node.links) do
            if link.address == canonical then
                table.remove(node.links, at)
                link.removed = true
                local was_live = link.state == "live"
                link.state = "down"
                if link.stream then
                    local stream = link.stream
                    link.stream = nil
                    stream.close()
                end
                if was_live then pick_router(node) end
                return true
            end
        end
        return false
    end

    --- The stream of the router in use, or nil when none is live.
    function node.router()
        local current = node.current
        return current and current.stream, current and current.address
    end

    --- Streams of every live router (to reach all of them, e.g. to set a master).
    function node.live_routers()
        local list = {}
        for _, link in ipairs(node.links) do
            if link.state == "live" then list[#list + 1] = link.stream end
        end
        return list
    end

    --- { [address] = state }: connecting, registering, live, down, id-in-use, auth-failed...
    function node.routers_status()
        local status = {}
        for _, link in ipairs(node.links) do status[link.address] = link.state end
        return status
    end
end

-- node.claim_master and node.release_master.
local function add_master_claims(node)
    --- Makes this node the master of its group on every router, now and on reconnects.
    function node.claim_master(id)
        id = id and to_id(id) or node.ids[1]
        node.master_claimed = id
        for _, stream in ipairs(node.live_routers()) do
            stream.call("@set_master", luna.service_group(id), id)
        end
    end

    --- Gives up an explicit master claim (routers fall back to the first node by id).
    function node.release_master()
        local id = node.master_claimed
        if not id then return end
        node.master_claimed = nil
        for _, stream in ipairs(node.live_routers()) do
            stream.call("@set_master", luna.service_group(id), 0)
        end
    end
end

-- SIGTERM/SIGINT while nodes run and the script kept the default handler:
-- drain every node, then quit.
local function drain_on_quit(signo)
    local left = 0
    for _ in pairs(running) do left = left + 1 end
    if left == 0 then luna_quit_flag = true return end
    for _, node in pairs(running) do
        node.drain(M.drain_timeout_ms, function()
            left = left - 1
            if left == 0 then luna_quit_flag = true end
        end)
    end
end

-- SIGTERM drains the nodes, unless the script has its own on_quit_signal.
local function install_quit_handler()
    if rawget(_G, "on_quit_signal") == luna.default_quit_signal then
        _G.on_quit_signal = drain_on_quit
    end
end

-- Pings every connected router: an answer keeps the link's timeout from firing.
local function send_heartbeats(node)
    for _, link in ipairs(node.links) do
        if link.stream and link.state ~= "connecting" then link.stream.call("@ping") end
    end
end

-- The ids of a cluster.start config, checked with its routers; an error when wrong.
local function check_config(config)
    local ids = {}
    for _, id in ipairs(config.ids or { config.id }) do ids[#ids + 1] = to_id(id, 4) end
    if #ids == 0 then error("luna.cluster.start: an id is required", 3) end
    if type(config.routers) ~= "table" then
        error("luna.cluster.start: a list of routers is required (it may be empty when discovery adds them)", 3)
    end
    for _, address in ipairs(config.routers) do
        local host, err = M.parse_address(address)
        if not host then error("luna.cluster.start: " .. err, 3) end
    end
    return ids
end

--- Starts a node (or returns the running one with this id, updated); see the file header.
function M.start(config)
    local ids = check_config(config)
    local existing = running[ids[1]]
    if existing and not existing.stopped then
        for _, field in ipairs(HOOKS) do existing[field] = config[field] end
        for _, address in ipairs(config.routers) do existing.add_router(address) end
        return existing
    end
    local heartbeat_ms = config.heartbeat_ms or 1000
    local node = {
        id = ids[1],
        ids = ids,
        name = luna.service_name(ids[1]),
        mgr = config.mgr or luna.create_socket_mgr(config.max_fd or 1024),
        links = {},
        is_master = config.is_master or false,
        dead_after_ms = config.dead_after_ms or heartbeat_ms * 3,
        connect_timeout_ms = config.connect_timeout_ms or 3000,
        backoff_min = config.backoff_min_ms or 100,
        backoff_max = config.backoff_max_ms or 5000,
        link_options = {
            secret = M.secret_of(config),
            tls = config.tls,
            handshake_timeout_ms = config.handshake_timeout_ms,
        },
    }
    for _, field in ipairs(HOOKS) do node[field] = config[field] end
    if log.set_name then log.set_name(node.name) end
    membership.install(node)
    pubsub.install(node)
    add_forwards(node)
    add_calls(node)
    add_lifecycle(node)
    add_router_management(node)
    add_master_claims(node)
    node.heartbeat = luna.interval(heartbeat_ms, function() send_heartbeats(node) end)
    running[node.id] = node
    install_quit_handler()
    for _, address in ipairs(config.routers) do node.add_router(address) end
    return node
end

return M
