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
-- The node connects to every router, registers its ids on each, sends a
-- heartbeat, notices a dead router (no traffic for 3 heartbeats, or the
-- connection breaks), reconnects with backoff, and sends through ONE live
-- router, chosen at random only when the set of live routers changes, so
-- messages between two services keep their order.
local luna = luna
local log = luna.log
local rpc = require("luna.rpc")

local M = {}

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

local function to_id(id)
    local value = type(id) == "string" and luna.service_id(id) or id
    if math.type(value) ~= "integer" or not luna.service_name(value) then
        error("luna.cluster: bad service id " .. tostring(id), 3)
    end
    return value
end

local FORWARDS = { "forward_target", "forward_master", "forward_random", "forward_broadcast", "forward_hash" }

--- Starts a node; see the file header for the configuration.
function M.start(config)
    local ids = {}
    for _, id in ipairs(config.ids or { config.id }) do ids[#ids + 1] = to_id(id) end
    if #ids == 0 then error("luna.cluster.start: an id is required", 2) end
    if type(config.routers) ~= "table" then
        error("luna.cluster.start: a list of routers is required (it may be empty when discovery adds them)", 2)
    end
    local heartbeat_ms = config.heartbeat_ms or 1000
    local dead_after_ms = config.dead_after_ms or heartbeat_ms * 3
    local backoff_min, backoff_max = config.backoff_min_ms or 100, config.backoff_max_ms or 5000
    local mgr = config.mgr or luna.create_socket_mgr(config.max_fd or 1024)

    local node = {
        id = ids[1],
        ids = ids,
        name = luna.service_name(ids[1]),
        mgr = mgr,
        links = {},
        on_call = config.on_call,
        handlers = config.handlers,
        on_forward_error = config.on_forward_error,
        on_router_change = config.on_router_change,
    }
    local current = nil -- the live link messages go through
    local stopped = false
    local warned_no_router = false

    local function pick_router()
        local live = {}
        for _, link in ipairs(node.links) do
            if link.live then live[#live + 1] = link end
        end
        local previous = current
        current = #live > 0 and live[math.random(#live)] or nil
        if current then
            warned_no_router = false
            log.info(node.name .. " sends through router " .. current.address)
        elseif previous then
            log.warn(node.name .. ": no live router")
        end
        local hook = node.on_router_change
        if hook and current ~= previous then hook(current and current.stream, current and current.address) end
    end

    local connect

    local function retry_later(link)
        if stopped then return end
        local delay = link.backoff
        link.backoff = math.min(link.backoff * 2, backoff_max)
        -- Jitter keeps a restarted router from being hit by everyone at once.
        luna.timer(delay // 2 + math.random(delay // 2 + 1), function() connect(link) end)
    end

    local function link_down(link, err)
        local was_live = link.live
        link.live, link.stream = false, nil
        if was_live then
            log.warn(node.name .. ": lost router " .. link.address .. " (" .. tostring(err) .. ")")
            pick_router()
        end
        retry_later(link)
    end

    function connect(link)
        if stopped or link.removed then return end
        local stream, err = mgr.connect(link.host, link.port, config.connect_timeout_ms or 3000)
        if not stream then
            log.warn(node.name .. ": cannot connect to router " .. link.address .. ": " .. err)
            return retry_later(link)
        end
        link.stream = stream
        stream.on_connect = function(result)
            if result ~= "ok" then
                link.stream = nil
                return retry_later(link)
            end
            stream.set_timeout(dead_after_ms)
            for _, id in ipairs(ids) do
                stream.call("@register", id, config.is_master or false)
            end
            if node.master_claimed then
                stream.call("@set_master", luna.service_group(node.master_claimed), node.master_claimed)
            end
            link.live, link.backoff = true, backoff_min
            log.info(node.name .. ": connected to router " .. link.address)
            pick_router()
        end
        stream.on_call = function(msg, ...)
            if msg == "@pong" or msg == "@registered" then return end
            if rpc.dispatch(stream, node.handlers, node.id, msg, ...) then return end
            local handler = node.on_call
            if handler then
                handler(msg, ...)
            else
                log.warn(node.name .. ": no handler for message " .. tostring(msg))
            end
        end
        stream.on_call_failed = rpc.call_failed
        stream.on_broadcast_targets = rpc.broadcast_targets
        stream.on_forward_error = function(err, mode, target, ...)
            local handler = node.on_forward_error
            if handler then
                handler(err, mode, target, ...)
            else
                local where = mode == "target" and luna.service_name(target) or ("group " .. target)
                log.warn(node.name .. ": forward " .. mode .. " to " .. where .. " failed: " .. err)
            end
        end
        stream.on_error = function(err) link_down(link, err) end
    end

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
        local link = { address = canonical, host = host, port = port, live = false, backoff = backoff_min }
        node.links[#node.links + 1] = link
        connect(link)
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
                local was_live = link.live
                link.live = false
                if link.stream then
                    local stream = link.stream
                    link.stream = nil
                    stream.close()
                end
                if was_live then pick_router() end
                return true
            end
        end
        return false
    end

    for _, address in ipairs(config.routers) do
        local host, port = M.parse_address(address)
        if not host then error("luna.cluster.start: " .. port, 2) end
        node.add_router(address)
    end

    local heartbeat = luna.interval(heartbeat_ms, function()
        for _, link in ipairs(node.links) do
            if link.live then link.stream.call("@ping") end
        end
    end)

    --- The stream of the router in use, or nil when none is live.
    function node.router()
        return current and current.stream, current and current.address
    end

    --- Streams of every live router (to reach all of them, e.g. to set a master).
    function node.live_routers()
        local list = {}
        for _, link in ipairs(node.links) do
            if link.live then list[#list + 1] = link.stream end
        end
        return list
    end

    for _, name in ipairs(FORWARDS) do
        node[name] = function(...)
            if not current then
                if not warned_no_router then
                    warned_no_router = true
                    log.warn(node.name .. ": no live router: " .. name .. " failed with no-route")
                end
                return nil, "no-route"
            end
            return current.stream[name](...)
        end
    end

    local function calls(timeout_ms)
        local function routed(mode, target, key, method, ...)
            if not current then
                log.warn(node.name .. ": no live router: the call failed with no-route")
                return nil, "no-route"
            end
            if mode == "broadcast" then
                return rpc.broadcast_call(timeout_ms, current.stream, ids[1], target, method, ...)
            end
            return rpc.routed_call(timeout_ms, current.stream, ids[1], mode, target, key, method, ...)
        end
        return {
            call_target = function(id, ...) return routed("target", id, 0, ...) end,
            call_master = function(group, ...) return routed("master", group, 0, ...) end,
            call_random = function(group, ...) return routed("random", group, 0, ...) end,
            call_hash = function(group, key, ...) return routed("hash", group, key, ...) end,
            call_broadcast = function(group, ...) return routed("broadcast", group, 0, ...) end,
        }
    end

    for name, fn in pairs(calls(nil)) do node[name] = fn end
    local views = {}
    --- The call functions with a different timeout: node.timeout(500).call_hash(...).
    function node.timeout(ms)
        views[ms] = views[ms] or calls(ms)
        return views[ms]
    end

    --- Makes this node the master of its group on every router, now and on reconnects.
    function node.claim_master(id)
        id = id and to_id(id) or ids[1]
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

    --- Leaves the cluster: unregisters and closes every router link.
    function node.stop()
        stopped = true
        heartbeat.cancel()
        for _, link in ipairs(node.links) do
            if link.stream then
                for _, id in ipairs(ids) do link.stream.call("@unregister", id) end
                link.stream.close()
            end
            link.live, link.stream = false, nil
        end
        current = nil
    end

    return node
end

return M
