---@meta luna.router
-- luna.router: a ready-to-run router of a star cluster.
--   luna -m luna.router --listen 127.0.0.1:7101 [--listen ...] [--heartbeat-ms 1000] [--keep-slots] ...
--   router = router or require("luna.router").start{ listen = { "127.0.0.1:7101" } }
-- Services (luna.cluster) register their ids; an id has one owner (`id-in-use`).

---The configuration of `router.start` (the command-line flags, parsed by `router.parse_args`).
---@class luna.router.Config: luna.SecurityOptions
---@field listen luna.cluster.Address|luna.cluster.Address[] # at least one
---@field heartbeat_ms? integer # services' heartbeat; a link silent 3 heartbeats is dropped (default 1000)
---@field dead_after_ms? integer # instead of 3 heartbeats
---@field keep_slots? boolean # keep a gone service's slot with token 0 (hash keys of the others stay put)
---@field stats_ms? integer # log the manager's counters this often
---@field max_fd? integer # default 65,536
---@field max_tracked_calls? integer # `mgr.set_max_tracked_calls`
---@field max_pending_input? integer # `mgr.set_max_pending_input`
---@field frame_timeout_ms? integer # `mgr.set_frame_timeout`
---@field max_ids? integer # `mgr.set_max_ids`
---@field secret_file? string # the cluster secret's file (its first line)
---@field redis? string # "host:port": publish this router in Redis (luna.discovery, kind "router")
---@field redis_db? integer
---@field redis_password? string # prefer LUNA_REDIS_PASSWORD
---@field prefix? string # discovery key prefix (default "luna")
---@field name? string # the router's name in Redis (default its address)
---@field ttl_ms? integer # discovery TTL

---A running router (`router.start`).
---@class luna.Router
---@field mgr luna.Manager # holds the route table and every link
---@field listeners luna.Listener[]
---@field config luna.router.Config
---@field owners table<integer, integer> # service id -> token of the link that holds it
---@field masters table<integer, integer> # group -> token of the explicit master
---@field watchers table<integer, luna.Stream> # token -> link told of every registration and departure
---@field dead_after_ms integer
---@field discovery? luna.Discovery # with `redis`: where the router is published

---The luna.router module.
---@class luna.router
local router = {}

---Starts a router: opens its listeners (raising an error if one cannot be opened).
---@param config luna.router.Config
---@return luna.Router
function router.start(config) end

---Parses the router's command line (raises an error naming a bad flag).
---@param args table<integer, string> # e.g. `luna.args`
---@return luna.router.Config
function router.parse_args(args) end

return router
