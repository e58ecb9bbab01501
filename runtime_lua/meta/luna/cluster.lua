---@meta luna.cluster
-- luna.cluster: a service's links to the routers of a star cluster.
--   local cluster = require("luna.cluster")
--   node = node or cluster.start{ id = "2.1", routers = { "127.0.0.1:7101" }, handlers = handlers }
--   node.forward_hash(2, account, "send_mail", account, text)        -- one-way
--   local unread, err = node.call_hash(2, account, "unread", account) -- in a coroutine

---The state of one router link (`node.routers_status()`): `live` once the
---router answered every registration; a refusal or failed handshake shows
---its error until the retry succeeds.
---@alias luna.RouterState
---| "connecting"
---| "registering"
---| "live"
---| "down"
---| "id-in-use"      # another live link holds the id: retried until it is free
---| "auth-failed"    # the cluster secret does not match
---| "tls-failed"
---| "invalid-param"
---| "too-many-ids"

---A router address: `"host:port"`, `"[v6]:port"`, `{ host = h, port = p }` (or `{ h, p }`).
---@alias luna.cluster.Address string|{ host: string, port: integer }|table

---The configuration of `cluster.start`.
---@class luna.cluster.Config: luna.SecurityOptions
---@field id? luna.ServiceId # this service's id (or `ids`)
---@field ids? luna.ServiceId[] # several ids on one node (the first is `node.id`)
---@field routers luna.cluster.Address[] # may be empty when discovery adds them
---@field handlers? luna.rpc.Handlers # answers calls, runs one-way messages by name
---@field on_call? fun(msg: any, ...: any) # any other message routed here
---@field on_forward_error? fun(err: luna.ForwardError, mode: luna.ForwardMode, target: integer, msg: any, ...: any) # default: logged
---@field on_router_change? fun(stream: luna.Stream?, address: string?) # the router in use changed (nil: none is live)
---@field on_router_error? fun(address: string, err: luna.RouterState, detail: string?) # a router refused us (`id-in-use`, `auth-failed`...)
---@field heartbeat_ms? integer # default 1000
---@field dead_after_ms? integer # a router silent this long is dropped (default 3 heartbeats)
---@field backoff_min_ms? integer # reconnect backoff (default 100)
---@field backoff_max_ms? integer # (default 5000)
---@field connect_timeout_ms? integer # default 3000
---@field max_fd? integer # of the node's own manager (default 1024)
---@field mgr? luna.Manager # a manager to use instead of a new one
---@field is_master? boolean # register as its group's master
---@field secret_file? string # the cluster secret's file (its first line); else `secret`, else LUNA_CLUSTER_SECRET

---A router link (internal state of a node).
---@class luna.cluster.Link
---@field address string
---@field host string
---@field port integer
---@field state luna.RouterState
---@field stream? luna.Stream

---The call functions with another timeout (`node.timeout(500)`).
---@class luna.cluster.Calls
local Calls = {}

---Calls `method` on service `id` (in a coroutine): the handler's results, or nil and a `luna.RpcError`.
---@async
---@param id luna.ServiceId
---@param method string
---@param ... any
---@return any ...
function Calls.call_target(id, method, ...) end

---Calls `method` on the master of `group`.
---@async
---@param group integer
---@param method string
---@param ... any
---@return any ...
function Calls.call_master(group, method, ...) end

---Calls `method` on a random node of `group`.
---@async
---@param group integer
---@param method string
---@param ... any
---@return any ...
function Calls.call_random(group, method, ...) end

---Calls `method` on the node of `group` that `key` hashes to.
---@async
---@param group integer
---@param key integer|string
---@param method string
---@param ... any
---@return any ...
function Calls.call_hash(group, key, method, ...) end

---Calls `method` on every node of `group`: `{ [service_id] = answer }`.
---@async
---@param group integer
---@param method string
---@param ... any
---@return table<integer, luna.rpc.Answer>? answers
---@return luna.RpcError? err
function Calls.call_broadcast(group, method, ...) end

---A running node (`cluster.start`). Sends through one live router, picked
---at random only when the set of live routers changes.
---@class luna.Node: luna.cluster.Calls
---@field id integer # the first service id
---@field ids integer[] # every service id of the node
---@field name string # the first id as `"group.index"`
---@field mgr luna.Manager # the manager of its router links
---@field is_master boolean
---@field dead_after_ms integer
---@field connect_timeout_ms integer
---@field backoff_min integer # ms
---@field backoff_max integer # ms
---@field handlers? luna.rpc.Handlers # from the config (replaced by a restart with the same id)
---@field on_call? fun(msg: any, ...: any)
---@field on_forward_error? fun(err: luna.ForwardError, mode: luna.ForwardMode, target: integer, msg: any, ...: any)
---@field on_router_change? fun(stream: luna.Stream?, address: string?)
---@field on_router_error? fun(address: string, err: luna.RouterState, detail: string?)
---@field private links luna.cluster.Link[]
---@field private link_options luna.SecurityOptions
---@field private heartbeat luna.TimerHandle
---@field private view table<integer, true> # ids live on the router in use, as announced
---@field private group_counts table<integer, integer> # live ids per group in `view`
---@field private member_listeners fun(id: integer, up: boolean)[]
---@field private subscriptions table<string, function> # topic -> what runs its messages
---@field private states_seen table<string, table<integer, integer>> # topic -> publisher -> last sequence
---@field private state_seq integer # sequence of this node's states
---@field private current? luna.cluster.Link
---@field private warned_no_router? boolean
---@field private draining? boolean
---@field private stopped? boolean
---@field private drain_timer? luna.TimerHandle
---@field private master_claimed? integer
local Node = {}

---One-way, through the router in use: to one service. `nil, "no-route"` when no router is live.
---@param service_id luna.ServiceId
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
function Node.forward_target(service_id, msg, ...) end

---One-way: to a group's master.
---@param group integer
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
function Node.forward_master(group, msg, ...) end

---One-way: to a random node of a group.
---@param group integer
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
function Node.forward_random(group, msg, ...) end

---One-way: to every node of a group.
---@param group integer
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
function Node.forward_broadcast(group, msg, ...) end

---One-way: to the node of a group that `key` hashes to.
---@param group integer
---@param key integer|string
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
function Node.forward_hash(group, key, msg, ...) end

---The call functions with a timeout of `ms`: `node.timeout(500).call_hash(...)`.
---@param ms integer
---@return luna.cluster.Calls
function Node.timeout(ms) end

---Leaves the cluster gracefully: unregisters every id from every router,
---lets the calls in flight finish, then sets `luna_quit_flag` (or calls
---`on_done()`). Returns at once.
---@param timeout_ms? integer # default `cluster.drain_timeout_ms`
---@param on_done? fun()
function Node.drain(timeout_ms, on_done) end

---Leaves the cluster at once: unregisters and closes every router link.
function Node.stop() end

---Adds a router (e.g. one found by discovery).
---@param address luna.cluster.Address
---@return boolean added # false if known or not an address
function Node.add_router(address) end

---Drops a router (e.g. its discovery key expired).
---@param address luna.cluster.Address
---@return boolean removed # false if unknown
function Node.remove_router(address) end

---The stream and address of the router in use, or nil when none is live.
---@return luna.Stream? stream
---@return string? address
function Node.router() end

---The streams of every live router.
---@return luna.Stream[]
function Node.live_routers() end

---Every router's state: `{ [address] = state }`.
---@return table<string, luna.RouterState>
function Node.routers_status() end

---The ids live on the router in use, sorted (of one group, or all).
---@param group? integer
---@return integer[]
function Node.members(group) end

---True while `id` is registered on the router in use.
---@param id luna.ServiceId
---@return boolean
function Node.is_active(id) end

---Calls `fn(id, up)` whenever an id registers or goes away on the router in
---use (every id already there is announced as up first; a router switch
---announces only real differences).
---@param fn fun(id: integer, up: boolean)
function Node.on_member(fn) end

---Calls and forwards whose target has no route yet wait up to `ms` for it
---(start-up ordering); 0 or nil: fail at once with `no-route` (the default).
---@param ms? integer
function Node.wait_for_route(ms) end

---Calls `fn(...)` (in a coroutine) for every message published on `topic`;
---a retained state comes first. Made on every router, so it survives a
---router switch.
---@param topic string # 1 to 255 bytes
---@param fn fun(...: any)
function Node.subscribe(topic, fn) end

---Stops hearing `topic`.
---@param topic string
function Node.unsubscribe(topic) end

---Sends `...` to every subscriber of `topic`, once each (through the router
---in use). A topic nobody hears is counted by the router, not an error.
---@param topic string
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
function Node.publish(topic, ...) end

---Publishes a state: every router keeps the latest for later subscribers;
---subscribers drop copies and older states. Returns how many routers took it.
---@param topic string
---@param ... any
---@return integer? routers
---@return luna.NetError|string? err
function Node.publish_state(topic, ...) end

---Makes this node (or its id `id`) master of its group on every router, now and on reconnects.
---@param id? luna.ServiceId
function Node.claim_master(id) end

---Gives up an explicit master claim (routers fall back to the first node by id).
function Node.release_master() end

---The luna.cluster module.
---@class luna.cluster
local cluster = {}

---Milliseconds the default SIGTERM handler lets `node.drain` take (default 5000).
---@type integer
cluster.drain_timeout_ms = 5000

---Starts a node: connects to every router and registers its ids there. With
---an id this process already runs (a hot reload), returns the running node
---with the new `handlers`, `on_call`, `on_forward_error`, `on_router_change`
---and `on_router_error`. Raises an error on a bad id or router address.
---@param config luna.cluster.Config
---@return luna.Node
function cluster.start(config) end

---The cluster secret of a config: `secret`, else the first line of
---`secret_file`, else LUNA_CLUSTER_SECRET; nil when none is set.
---@param config { secret?: string, secret_file?: string }
---@return string?
function cluster.secret_of(config) end

---Splits `"host:port"` (or `"[v6]:port"`, or a `{ host, port }` table).
---Returns host, port, or nil and the error (a string, in place of the port).
---@param text luna.cluster.Address
---@return string? host
---@return integer? port
function cluster.parse_address(text) end

return cluster
