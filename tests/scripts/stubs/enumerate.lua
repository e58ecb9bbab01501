-- Lists luna's public API as it exists at run time, for tests/stubs.rs:
--   API <object> <name>
-- for every string key not starting with "_" of each object below (and
-- every global the runtime adds to _G), then "DONE". The test checks each
-- name against the editor stubs in runtime_lua/meta/, through its table of
-- object -> stub class: an object printed here and missing from that table
-- fails the test, so a new kind of object cannot slip past it.
local STANDARD_GLOBALS = {}
for name in ("_G _VERSION arg assert collectgarbage coroutine debug dofile error getmetatable io ipairs load "
    .. "loadfile math next os package pairs pcall print rawequal rawget rawlen rawset require select "
    .. "setmetatable string table tonumber tostring type utf8 warn xpcall"):gmatch("%S+") do
    STANDARD_GLOBALS[name] = true
end

local function list(object, t, skip)
    assert(type(t) == "table", object .. " is not a table")
    local names = {}
    for key in pairs(t) do
        if type(key) == "string" and key:sub(1, 1) ~= "_" and not (skip and skip[key]) then
            names[#names + 1] = key
        end
    end
    table.sort(names)
    for _, name in ipairs(names) do print("API " .. object .. " " .. name) end
end

-- A port nothing listens on: bound by the system, then closed.
local function closed_port(mgr)
    local probe = assert(mgr.listen("127.0.0.1", 0))
    local port = probe.port
    probe.close()
    return port
end

list("globals", _G, STANDARD_GLOBALS)
list("luna", luna)
list("log", luna.log)
local handle = luna.timer(60000, function() end)
list("timer_handle", handle)
handle.cancel()

-- Sockets: a manager, a listener, and one stream of each framing.
local mgr = luna.create_socket_mgr(64)
list("mgr", mgr)
local listener = assert(mgr.listen("127.0.0.1", 0))
list("listener", listener)
listener.on_accept = function() end
local stream = assert(mgr.connect("127.0.0.1", listener.port, 1000))
list("stream", stream)
-- A raw stream: the one a raw listener accepts (mgr.connect does not honour
-- `framing = "raw"` yet: it returns a luna stream).
local raw_listener = assert(mgr.listen("127.0.0.1", 0, { framing = "raw" }))
local raw
raw_listener.on_accept = function(accepted) raw = accepted end
local raw_client = assert(mgr.connect("127.0.0.1", raw_listener.port, 1000))
local deadline = luna.get_time_ms() + 10000
while not raw and luna.get_time_ms() < deadline do luna.wait(20) end
assert(raw, "the raw listener accepted nothing")
list("raw_stream", raw)
local dead_port = closed_port(mgr)
local redis_stream = assert(mgr.connect_redis("127.0.0.1", dead_port, 1000))
list("redis_stream", redis_stream)
for _, socket in ipairs({ stream, raw, raw_client, redis_stream, listener, raw_listener }) do socket.close() end

-- luna.rpc
local rpc = require("luna.rpc")
list("rpc", rpc)
list("rpc_timeout", rpc.timeout(100))

-- luna.cluster and a node (no routers: nothing to connect to).
local cluster = require("luna.cluster")
list("cluster", cluster)
local node = cluster.start{ id = "9.1", routers = {} }
list("node", node)
list("node_timeout", node.timeout(100))
node.stop()

-- luna.router and a running router.
local router_module = require("luna.router")
list("router", router_module)
local router = router_module.start{ listen = { "127.0.0.1:0" } }
list("router_object", router)
for _, l in ipairs(router.listeners) do l.close() end

-- luna.redis and a client (of a closed port: it keeps retrying until closed).
local redis = require("luna.redis")
list("redis", redis)
local client = redis.connect{ host = "127.0.0.1", port = dead_port }
list("redis_client", client)
client.close()

-- luna.discovery, a started object and a lease.
local discovery_module = require("luna.discovery")
list("discovery", discovery_module)
local discovery = discovery_module.start{ redis = { host = "127.0.0.1", port = dead_port } }
list("discovery_object", discovery)
list("lease", discovery.lease("stubs", "9.1"))
discovery.stop()
discovery.redis.close()

-- luna.metrics and one metric of each type.
local metrics = require("luna.metrics")
list("metrics", metrics)
list("counter", metrics.counter("stubs_counter", "a counter"))
list("gauge", metrics.gauge("stubs_gauge", "a gauge"))
list("histogram", metrics.histogram("stubs_histogram", "a histogram"))

-- The runtime's other modules.
list("console", require("luna.console"))
list("import", require("luna.import"))

print("DONE")
luna_quit_flag = true
