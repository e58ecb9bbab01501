-- Shared settings of the example cluster. Router addresses come from
-- CLUSTER_ROUTERS ("host:port,host:port") or default to two local ports.
MAIL, MATCH, GAME, CLIENT = 2, 3, 4, 10

routers = {}
for address in (os.getenv("CLUSTER_ROUTERS") or "127.0.0.1:7101,127.0.0.1:7102"):gmatch("[^,]+") do
    routers[#routers + 1] = address
end

local cluster = require("luna.cluster")

--- Starts this process's node with the given handlers.
function start_node(id, handlers, extra)
    local config = { id = id, routers = routers, handlers = handlers }
    for k, v in pairs(extra or {}) do config[k] = v end
    return cluster.start(config)
end
