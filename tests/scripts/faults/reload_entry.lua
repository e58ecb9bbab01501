-- An entry that starts its node at the top level, as the examples do; the
-- test copies it to a scratch directory and rewrites it ("v1" -> "v2"), so
-- the hot reload runs cluster.start again. ROUTERS=ip:port.
local cluster = require("luna.cluster")

local version = "v1"
node = cluster.start{
    id = "2.1",
    routers = { os.getenv("ROUTERS") },
    heartbeat_ms = 100,
    handlers = { whoami = function() return version end },
}
print("loaded " .. version)
