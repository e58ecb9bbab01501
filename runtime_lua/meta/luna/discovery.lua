---@meta luna.discovery
-- luna.discovery: finding services and electing masters through Redis.
--   local d = require("luna.discovery").start{ redis = { host = "127.0.0.1", port = 6379 }, ttl_ms = 3000 }
--   d.register("service", node.name, "up")   -- key luna:service:2.1, refreshed every ttl/3
--   d.follow_routers(node)                   -- connect to every router registered in Redis
--   d.master_lease(node)                     -- one master per group
-- A Redis outage never blocks: the last known tables stay in use.

---The configuration of `discovery.start`.
---@class luna.discovery.Config
---@field redis? { host?: string, port?: integer, password?: string, username?: string, db?: integer }
---@field prefix? string # keys are `<prefix>:<kind>:<name>` (default "luna")
---@field ttl_ms? integer # of registrations and leases (default 3000)
---@field refresh_ms? integer # registrations are written again this often (default ttl/3)
---@field rescan_ms? integer # safety-net re-scan (default 5000)
---@field grace_ms? integer # a name missing from scans this long is removed (default the TTL)

---Options of `d.lease`.
---@class luna.discovery.LeaseOptions
---@field ttl_ms? integer # default the discovery's TTL
---@field margin_ms? integer # the holder demotes itself this long before the key could expire (default max(ttl/10, 20))
---@field on_promote? fun() # we hold the lease now
---@field on_demote? fun(reason: string) # we lost it ("not renewed in time", "held by another", "released")

---A lease: at most one holder at a time, also when the holder is cut off from Redis.
---@class luna.Lease
---@field key string # the Redis key
---@field id string # who we are in the lease
---@field held boolean # we hold it (see also `is_held`)
---@field ttl_ms integer
---@field margin_ms integer
---@field on_promote? fun()
---@field on_demote? fun(reason: string)
---@field private timer luna.TimerHandle
---@field private deadline? integer
---@field private demote_timer? luna.TimerHandle
---@field private released? boolean
local Lease = {}

---True while we hold the lease and its deadline has not passed.
---@return boolean
function Lease.is_held() end

---A started discovery (`discovery.start`).
---@class luna.Discovery
---@field prefix string
---@field redis luna.redis.Client # the client of its commands
local Discovery = {}

---Publishes kind/name -> value while this process lives (deleted on a graceful stop, expires after a kill).
---@param kind string
---@param name string
---@param value any # written with tostring
function Discovery.register(kind, name, value) end

---Follows every name of a kind: `on_add(name, value)` when added or changed, `on_remove(name, value)` when gone.
---@param kind string
---@param on_add? fun(name: string, value: string)
---@param on_remove? fun(name: string, value: string)
---@return table<string, string> known # the names known now, kept up to date
function Discovery.watch(kind, on_add, on_remove) end

---Competes for the lease `name` as `id`.
---@param name string
---@param id any # written with tostring
---@param options? luna.discovery.LeaseOptions
---@return luna.Lease
function Discovery.lease(name, id, options) end

---Deletes this process's keys and releases its leases (also run by `luna.at_exit`).
function Discovery.stop() end

---Keeps a luna.cluster node connected to every router registered as kind "router".
---@param node luna.Node
---@return table<string, string> known
function Discovery.follow_routers(node) end

---Makes a luna.cluster node compete for the master lease of its group: the
---holder is master on every router (`node.claim_master`).
---@param node luna.Node
---@param options? { ttl_ms?: integer, on_promote?: fun(), on_demote?: fun(reason: string) }
---@return luna.Lease
function Discovery.master_lease(node, options) end

---The luna.discovery module.
---@class luna.discovery
local discovery = {}

---Starts discovery (connects to Redis in the background).
---@param config? luna.discovery.Config
---@return luna.Discovery
function discovery.start(config) end

return discovery
