---@meta luna.rpc
-- luna.rpc: calls that return the remote handler's results, from coroutines.
--   local rpc = require("luna.rpc")
--   rpc.serve(stream, handlers)                                 -- answering side
--   luna.go(function() local sum, err = rpc.call(stream, "add", 1, 2) end)
-- Cluster nodes call through routers: node.call_target/master/random/hash/broadcast.

---Why a call failed (second return value): `timeout`, `no-route` (the router
---had nowhere to send it), `connection-lost` (the stream or the callee went
---away; at once, not at the timeout), `remote-error: <message>` (the handler
---raised or has no such method), or the reason the arguments could not be sent.
---@alias luna.RpcError "timeout"|"no-route"|"connection-lost"|"too-many-calls"|string

---The answer of one node to a broadcast call: `{ ok = true, n = count, ... }`
---(the handler's results) or `{ ok = false, err = reason }`.
---@class luna.rpc.Answer
---@field ok boolean
---@field err? luna.RpcError
---@field n? integer # how many results (when ok)
---@field [integer] any # the results (when ok)

---The rpc counters (`rpc.stats()`).
---@class luna.rpc.Stats
---@field calls integer # calls made
---@field completed integer # calls answered
---@field timeouts integer
---@field late_replies integer # answers after their call timed out (dropped)
---@field connection_lost integer
---@field no_route integer
---@field remote_errors integer # the handler raised or did not exist
---@field pending integer # our calls waiting for answers
---@field serving integer # calls being handled here

---Handlers by method name: `handlers[method](...)` answers calls (looked up
---at each call, so a hot reload changes the next answer) and runs one-way
---messages named after it.
---@alias luna.rpc.Handlers table<string, fun(...): ...>

---The call functions with another timeout (`rpc.timeout(500)`).
---@class luna.rpc.Caller
local Caller = {}

---Calls `method` on the far end of `stream` (in a coroutine); its results, or nil and the error.
---@async
---@param stream luna.Stream
---@param method string
---@param ... any
---@return any ...
function Caller.call(stream, method, ...) end

---The luna.rpc module.
---@class luna.rpc
local rpc = {}

---Milliseconds a call waits for its answer unless told otherwise (default 5000).
---@type integer
rpc.default_timeout_ms = 5000

---The counters.
---@return luna.rpc.Stats
function rpc.stats() end

---When true, calls and forwards made outside a traced handler start a new
---trace id (default false: only existing trace ids are passed on).
---@type boolean
rpc.tracing = false

---The trace id of the call or message being handled (same as `luna.trace_id`).
---@return string?
function rpc.current_trace() end

---The trace id an outgoing call or forward carries: the current one, or a new
---one when `rpc.tracing` is on.
---@return string?
function rpc.outgoing_trace() end

---Makes `stream` answer calls with `handlers` and deliver answers to its
---callers; other messages go to `fallback(msg, ...)` (default: the stream's
---own `on_call`, if it had one). Sets `stream.on_call`.
---@param stream luna.Stream
---@param handlers? luna.rpc.Handlers
---@param fallback? fun(msg: any, ...: any)
---@return luna.Stream stream
function rpc.serve(stream, handlers, fallback) end

---Calls `method` on the far end of `stream` from a coroutine (`luna.go`):
---returns the handler's results, or nil and a `luna.RpcError`. Raises an
---error outside a coroutine.
---@async
---@param stream luna.Stream
---@param method string
---@param ... any
---@return any ...
function rpc.call(stream, method, ...) end

---The call functions with a timeout of `ms`: `rpc.timeout(500).call(stream, ...)`.
---@param ms integer
---@return luna.rpc.Caller
function rpc.timeout(ms) end

---Runs `fn(...)` in a coroutine and passes its results to `callback` (for
---code outside coroutines): `rpc.async(rpc.call, print, stream, "ping")`.
---@param fn async fun(...): ...
---@param callback fun(...)
---@param ... any
---@return thread
function rpc.async(fn, callback, ...) end

---Plumbing for luna.cluster (use `node.call_*`): a call through a router.
---@async
---@param timeout_ms integer?
---@param stream luna.Stream
---@param reply_to integer # the caller's service id
---@param mode luna.ForwardMode
---@param target integer
---@param key integer|string
---@param method string
---@param ... any
---@return any ...
function rpc.routed_call(timeout_ms, stream, reply_to, mode, target, key, method, ...) end

---Plumbing for luna.cluster (use `node.call_broadcast`): a call to every node of a group.
---@async
---@param timeout_ms integer?
---@param stream luna.Stream
---@param reply_to integer
---@param group integer
---@param method string
---@param ... any
---@return table<integer, luna.rpc.Answer>? answers
---@return luna.RpcError? err
function rpc.broadcast_call(timeout_ms, stream, reply_to, group, method, ...) end

---Plumbing for luna.cluster: handles one message of a served link (calls,
---answers, one-way messages named after a handler); false for anything else.
---@param stream luna.Stream
---@param handlers luna.rpc.Handlers?
---@param self_id integer
---@param msg any
---@param ... any
---@return boolean handled
function rpc.dispatch(stream, handlers, self_id, msg, ...) end

---Plumbing for rpc.serve and luna.cluster: the function the core runs, in
---one of its worker coroutines, for each call on `stream` without a trace id
---(the stream's `_on_rpc`); it runs `owner.handlers[method]`, looked up per
---call, and answers as `self_id`.
---@param stream luna.Stream
---@param owner { handlers: luna.rpc.Handlers? }
---@param self_id integer
---@return fun(session: integer, reply_to: integer, method: any, ...: any)
function rpc.call_server(stream, owner, self_id) end

---Plumbing (a stream's `on_call_failed`): a router reports a tracked call failed.
---@param session integer
---@param err luna.ForwardError
---@param mode luna.ForwardMode
---@param target integer
function rpc.call_failed(session, err, mode, target) end

---Plumbing (a stream's `on_broadcast_targets`): the service ids a broadcast call reached.
---@param session integer
---@param ids integer[]
function rpc.broadcast_targets(session, ids) end

return rpc
