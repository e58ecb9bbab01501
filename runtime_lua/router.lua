-- luna.router: a ready-to-run router of a star cluster.
--
-- As a script:   luna runtime_lua/router.lua --listen 127.0.0.1:7001 [--listen ...]
--                    [--heartbeat-ms 1000] [--keep-slots] [--stats-ms N]
--                    [--redis HOST:PORT [--redis-password PW] [--redis-db N] [--prefix P] [--name NAME] [--ttl-ms N]]
-- With --redis the router publishes its address (kind "router") so that
-- services using luna.discovery find it and drop it when it goes away.
-- As a module:   require("luna.router").start{ listen = { "127.0.0.1:7001" } }
--
-- Services (see luna.cluster) register their ids; the router keeps the
-- route table from those registrations and removes a service whose
-- connection dies (or keeps its slot with token 0 with --keep-slots, so
-- hash keys of the other instances do not move). Forwards are passed on by
-- the core without decoding them.
local luna = luna
local log = luna.log
local cluster = require("luna.cluster")

local M = {}

--- Starts a router; returns a table with the manager and the listeners.
function M.start(config)
    local listen = config.listen
    if type(listen) ~= "table" or type(listen.host) == "string" then listen = { listen } end
    if #listen == 0 then error("luna.router.start: at least one listen address is required", 2) end
    local heartbeat_ms = config.heartbeat_ms or 1000
    local dead_after_ms = config.dead_after_ms or heartbeat_ms * 3
    local mgr = luna.create_socket_mgr(config.max_fd or 65536)
    local router = { mgr = mgr, listeners = {}, owners = {} }
    local owners = router.owners -- service id -> token of the stream that registered it
    local masters = {} -- group -> token of the explicit master

    local function accept(stream)
        local peer = stream.ip .. ":" .. stream.port
        local ids = {}
        stream.set_timeout(dead_after_ms)
        stream.on_call = function(msg, a, b)
            if msg == "@ping" then
                stream.call("@pong")
            elseif msg == "@register" then
                local ok, err = mgr.route(a, stream.token, b)
                if not ok then
                    log.warn("router: bad registration " .. tostring(a) .. " from " .. peer .. ": " .. err)
                    return
                end
                local id = type(a) == "string" and luna.service_id(a) or a
                ids[id] = true
                owners[id] = stream.token
                log.info("router: " .. luna.service_name(id) .. " registered from " .. peer)
                stream.call("@registered", id)
            elseif msg == "@unregister" then
                local id = type(a) == "string" and luna.service_id(a) or a
                if id and owners[id] == stream.token then
                    mgr.route(id, nil)
                    owners[id], ids[id] = nil, nil
                    log.info("router: " .. luna.service_name(id) .. " unregistered")
                end
            elseif msg == "@set_master" then
                local token = owners[b]
                if b == 0 then
                    -- A release clears the claim only if it is still this stream's.
                    if masters[a] == stream.token then
                        masters[a] = nil
                        mgr.set_master(a, 0)
                        log.info("router: group " .. tostring(a) .. " has no explicit master now")
                    end
                elseif token then
                    masters[a] = token
                    mgr.set_master(a, token)
                    log.info("router: master of group " .. tostring(a) .. " is " .. luna.service_name(b))
                else
                    log.warn("router: @set_master for unknown service " .. tostring(b))
                end
            else
                log.warn("router: unknown message " .. tostring(msg) .. " from " .. peer)
            end
        end
        stream.on_error = function(err)
            for group, token in pairs(masters) do
                if token == stream.token then masters[group] = nil end
            end
            for id in pairs(ids) do
                if owners[id] == stream.token then
                    mgr.route(id, config.keep_slots and 0 or nil)
                    owners[id] = nil
                    log.info("router: " .. luna.service_name(id) .. " gone (" .. err .. ")")
                end
            end
        end
    end

    for _, address in ipairs(listen) do
        local host, port = cluster.parse_address(address)
        if not host then error("luna.router.start: " .. port, 2) end
        local listener, err, detail = mgr.listen(host, port)
        if not listener then
            error("luna.router: cannot listen on " .. host .. ":" .. port .. ": " .. err .. " " .. tostring(detail), 2)
        end
        listener.on_accept = accept
        router.listeners[#router.listeners + 1] = listener
        log.info("router listening on " .. listener.ip .. ":" .. listener.port)
        print("listening " .. listener.ip .. ":" .. listener.port)
    end
    if config.redis then
        local host, port = cluster.parse_address(config.redis)
        if not host then error("luna.router.start: --redis " .. port, 2) end
        local discovery = require("luna.discovery").start{
            redis = { host = host, port = port, password = config.redis_password, db = config.redis_db },
            prefix = config.prefix, ttl_ms = config.ttl_ms,
        }
        local first = router.listeners[1]
        local address = first.ip .. ":" .. first.port
        discovery.register("router", config.name or address, address)
        router.discovery = discovery
    end
    if config.stats_ms then
        luna.interval(config.stats_ms, function()
            local s = mgr.stats()
            log.info(string.format("router stats: forwarded=%d forward_failed=%d tracked_calls=%d open=%d bad_packages=%d",
                s.forwarded, s.forward_failed, s.tracked_calls, s.open, s.bad_packages))
        end)
    end
    return router
end

--- Parses the command line of the router script.
function M.parse_args(args)
    local config = { listen = {} }
    local i = 1
    while args[i] do
        local flag = args[i]
        if flag == "--listen" then
            config.listen[#config.listen + 1] = args[i + 1]
            i = i + 2
        elseif flag == "--heartbeat-ms" then
            config.heartbeat_ms = tonumber(args[i + 1])
            i = i + 2
        elseif flag == "--max-fd" then
            config.max_fd = tonumber(args[i + 1])
            i = i + 2
        elseif flag == "--stats-ms" then
            config.stats_ms = tonumber(args[i + 1])
            i = i + 2
        elseif flag == "--redis" or flag == "--redis-password" or flag == "--prefix" or flag == "--name" then
            config[flag:sub(3):gsub("-", "_")] = args[i + 1]
            i = i + 2
        elseif flag == "--redis-db" or flag == "--ttl-ms" then
            config[flag:sub(3):gsub("-", "_")] = tonumber(args[i + 1])
            i = i + 2
        elseif flag == "--keep-slots" then
            config.keep_slots = true
            i = i + 1
        else
            error("router: unknown argument " .. tostring(flag)
                .. " (usage: --listen HOST:PORT [--listen ...] [--heartbeat-ms N] [--max-fd N] [--keep-slots] [--stats-ms N]"
                .. " [--redis HOST:PORT] [--redis-password PW] [--redis-db N] [--prefix P] [--name NAME] [--ttl-ms N])", 0)
        end
    end
    return config
end

-- Run as an entry script (import passes no arguments; require passes the module name).
if select("#", ...) == 0 then
    router = M.start(M.parse_args(luna.args))
end

return M
