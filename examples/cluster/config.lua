-- Shared settings of the example cluster. Router addresses come from
-- CLUSTER_ROUTERS ("host:port,host:port") or default to two local ports.
-- With CLUSTER_REDIS=host:port, services find routers through Redis
-- instead, and match services elect their master with a Redis lease.
MAIL, MATCH, GAME, CLIENT = 2, 3, 4, 10

routers = {}
for address in (os.getenv("CLUSTER_ROUTERS") or "127.0.0.1:7101,127.0.0.1:7102"):gmatch("[^,]+") do
    routers[#routers + 1] = address
end

local cluster = require("luna.cluster")

-- `x = x or ...`: this file is re-run on every save (hot reload); the
-- discovery client and the nodes must be started only once.
local redis_address = os.getenv("CLUSTER_REDIS")
if redis_address and not discovery then
    local host, port = cluster.parse_address(redis_address)
    discovery = require("luna.discovery").start{
        redis = { host = host, port = port, password = os.getenv("CLUSTER_REDIS_PASSWORD") },
        prefix = "cluster",
    }
end

--- Starts this process's node with the given handlers.
function start_node(id, handlers, extra)
    local config = { id = id, routers = discovery and {} or routers, handlers = handlers }
    for k, v in pairs(extra or {}) do config[k] = v end
    local node = cluster.start(config)
    if discovery then
        discovery.follow_routers(node)
        discovery.register("service", node.name, "up")
    end
    return node
end
