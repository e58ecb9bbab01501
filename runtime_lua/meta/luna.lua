---@meta luna
-- Editor stubs (LuaLS / EmmyLua) for luna: the `luna` core module, socket
-- managers, listeners and streams, timers, `import` and the entry's hooks.
-- Definitions only: nothing here runs. `luna --stubs DIR` writes these files;
-- point `workspace.library` of your .luarc.json at DIR. Objects are tables of
-- closures: call their methods with a dot (`stream.call(...)`), never `:`.

------------------------------------------------------------------------
-- Error strings

---An error of the socket API: the second return value of a failed call, or
---the argument of `on_error` / `on_connect`.
---@alias luna.NetError
---| "connection-lost"     # the peer closed the connection (end of file) or it broke
---| "timeout"             # a connect, idle (`set_timeout`) or frame timeout expired
---| "connect-failed"      # the connection attempt was refused or failed
---| "addr-error"          # the host could not be resolved, or the address cannot be used
---| "send-buffer-full"    # unsent output would pass the stream's send buffer size (the stream is closed)
---| "package-too-large"   # a message is larger than the manager's package size
---| "bad-package"         # the peer sent bytes that are not a valid frame or message
---| "too-many-connection" # the manager's `max_fd` is reached
---| "invalid-param"       # an argument is missing or out of range (a third value says which)
---| "closed"              # the stream or listener is already closed
---| "recv-buffer-full"    # the manager holds too many bytes of unfinished frames; this stream held the most
---| "too-many-ids"        # a stream asked to hold more service ids than `mgr.set_max_ids` allows
---| "auth-failed"         # the peer did not prove the cluster secret (or refused ours)
---| "tls-failed"          # the TLS handshake or session failed

---Why a router could not deliver a forward (`on_forward_error`, `on_call_failed`).
---@alias luna.ForwardError
---| "no-route"         # no live node matches (unknown id, empty group, no master)
---| "send-buffer-full" # the receiver has too much unsent output
---| "connection-lost"  # the receiver of a tracked call went away before answering
---| "too-many-calls"   # the caller has as many calls tracked by the router as it may

---How a forward picks its receiver.
---@alias luna.ForwardMode "target"|"master"|"random"|"broadcast"|"hash"

---`"ok"` when connected, else the reason it failed.
---@alias luna.ConnectResult "ok"|luna.NetError

---A service id: `group << 16 | index` (group 1-255, index 1-65535), or its name `"group.index"`.
---@alias luna.ServiceId integer|string

---A log level (`warning` is `warn`).
---@alias luna.LogLevel "debug"|"info"|"warn"|"warning"|"error"

------------------------------------------------------------------------
-- Tables the core returns

---What the command line asks the runtime to start.
---@class luna.Options
---@field metrics? { host: string, port: integer } # `--metrics HOST:PORT`
---@field console? { host: string, port: integer } # `--console HOST:PORT`
---@field module boolean # `-m`: the entry is a module name

---A manager's counters and gauges (`mgr.stats()`).
---@class luna.ManagerStats
---@field forwarded integer # messages forwarded through this manager's route table
---@field forward_failed integer # forwards that could not be delivered
---@field bad_packages integer # malformed or oversized frames received (the stream was closed)
---@field bad_deliveries integer # delivered messages that could not be decoded
---@field refused integer # connections refused (`too-many-connection`)
---@field unhandled integer # messages that found no `on_call`/`on_recv`
---@field calls_refused integer # tracked calls refused (`too-many-calls`)
---@field recv_buffer_full integer # streams closed with `recv-buffer-full`
---@field frame_timeouts integer # streams closed for a frame that took too long
---@field ids_refused integer # `mgr.route` calls refused with `too-many-ids`
---@field auth_failed integer # links that failed the cluster-secret handshake
---@field tls_failed integer # links that failed the TLS handshake
---@field open integer # open listeners and streams
---@field pending_input integer # bytes of unfinished frames held
---@field tracked_calls integer # calls through this router being tracked
---@field max_fd integer # most listeners and streams this manager may hold

---The process's figures (`luna.process_stats()`).
---@class luna.ProcessStats
---@field uptime_ms integer
---@field timers integer # pending timers
---@field open_files integer # open descriptors (0 when unknown)
---@field log_dropped integer # log lines dropped (queue full)
---@field managers luna.ManagerStats[] # every manager, in creation order

---One open listener or stream (`luna.connections()`).
---@class luna.ConnectionInfo
---@field token integer
---@field mgr integer # the manager's number, in creation order from 1
---@field state string # "listener", or the stream's state ("open", "connecting", "closing"...)
---@field ip string
---@field port integer
---@field bytes_in integer
---@field bytes_out integer
---@field unsent integer # bytes queued and not yet written
---@field age_ms integer

---A timer (`luna.timer`, `luna.interval`).
---@class luna.TimerHandle
---@field id integer # the timer's id (for `luna.timer_cancel`)
local TimerHandle = {}

---Cancels the timer.
---@return boolean pending # true if it had not fired (or, repeating, was still running)
function TimerHandle.cancel() end

------------------------------------------------------------------------
-- Options of listen and connect

---TLS settings of a listener or a connection (PEM files).
---@class luna.TlsOptions
---@field cert? string # certificate chain (required to listen; a client certificate to connect)
---@field key? string # private key of `cert`
---@field ca? string # CA to check the peer against (to connect: instead of the system roots)
---@field server_name? string # name to check the server's certificate for (default: the host connected to)
---@field require_client_cert? boolean # listener: refuse clients without a certificate signed by `ca`

---How a link is secured (both sides must agree).
---@class luna.SecurityOptions
---@field secret? string # cluster secret: both sides prove it before anything else crosses the link
---@field tls? luna.TlsOptions
---@field handshake_timeout_ms? integer # default 5000; a slower handshake closes the link (`auth-failed`/`tls-failed`)

---Options of `mgr.listen`.
---@class luna.ListenOptions: luna.SecurityOptions
---@field backlog? integer # default 1024
---@field framing? "luna"|"raw" # "raw": streams carry bytes as they come (`on_data`, `write`)

---Options of `mgr.connect` and `mgr.connect_redis`.
---@class luna.ConnectOptions: luna.SecurityOptions
---@field framing? "luna"|"raw" # "raw": the stream carries bytes as they come (`on_data`, `write`)

------------------------------------------------------------------------
-- Sockets

---A socket manager: owns listeners and streams (at most `max_fd`) and a route table.
---@class luna.Manager
local Manager = {}

---Runs one pass of the process's loop: waits up to `ms` (default 0) for
---anything (every manager's sockets, timers, signals, file changes) and
---handles it. Not from inside a callback.
---@param ms? integer
---@return integer handled # events handled
function Manager.wait(ms) end

---Opens a listener (port 0: the system picks one; see `listener.port`).
---Errors: `invalid-param`, `too-many-connection`, `addr-error` (with the system's reason).
---@param ip string
---@param port integer
---@param options? integer|luna.ListenOptions # the backlog, or options
---@return luna.Listener? listener
---@return luna.NetError? err
---@return string? detail # what exactly was wrong
function Manager.listen(ip, port, options) end

---Connects without blocking (DNS off the loop); `stream.on_connect(result, detail)` tells how it went.
---@param host string
---@param port integer
---@param timeout_ms? integer # default 5000
---@param options? luna.ConnectOptions
---@return luna.Stream? stream
---@return luna.NetError? err
---@return string? detail
function Manager.connect(host, port, timeout_ms, options) end

---Connects to a Redis server: `stream.command(...)` sends, `stream.on_reply(value, err)` receives.
---(`luna.redis` is the client built on it.)
---@param host string
---@param port integer
---@param timeout_ms? integer # default 5000
---@param options? luna.SecurityOptions
---@return luna.RedisStream? stream
---@return luna.NetError? err
---@return string? detail
function Manager.connect_redis(host, port, timeout_ms, options) end

---Sets the largest message, both ways, for all its streams (default 16 MiB).
---@param bytes integer
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_package_size(bytes) end

---Routes `service_id` to a stream (router side): `token` a stream's token,
---0 keeps the slot (fixed hash), nil removes it. Errors: `invalid-param`, `too-many-ids`.
---@param service_id luna.ServiceId
---@param token? integer
---@param is_master? boolean # also make it its group's master
---@return true? ok
---@return luna.NetError? err
---@return string? detail
function Manager.route(service_id, token, is_master) end

---Same as `mgr.route` (the seeds' name).
---@param service_id luna.ServiceId
---@param token? integer
---@param is_master? boolean
---@return true? ok
---@return luna.NetError? err
---@return string? detail
function Manager.register(service_id, token, is_master) end

---Sets the explicit master of a group (0 clears it: the first live node by id is master).
---@param group integer # 1-255
---@param token integer
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_master(group, token) end

---The manager's counters.
---@return luna.ManagerStats
function Manager.stats() end

---Routed calls one connection may have tracked at once (default 65,536); past it: `too-many-calls`.
---@param n integer
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_max_tracked_calls(n) end

---Bytes of unfinished frames over all streams (default 256 MiB); past it the
---stream holding the most is closed with `recv-buffer-full`.
---@param bytes integer
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_max_pending_input(bytes) end

---How long a frame may take once started (default 30 s, 0 = no limit); past it: `timeout`.
---@param ms integer
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_frame_timeout(ms) end

---Service ids one stream may hold (default 4,096); past it `mgr.route` fails with `too-many-ids`.
---@param n integer
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_max_ids(n) end

---Publish/subscribe (a router): the stream `token` gets every Publish frame on
---`topic`, its retained message first.
---@param topic string # 1 to 255 bytes
---@param token integer # a stream's token
---@return true? ok
---@return "too-many-subscriptions"|"too-many-topics"|"invalid-param"|"closed"? err
---@return string? detail
function Manager.subscribe(topic, token) end

---Ends a subscription; true if there was one.
---@param topic string
---@param token integer
---@return boolean
function Manager.unsubscribe(topic, token) end

---How a group picks the node for a hash key: `"modulo"` (`key % count`, the
---default) or `"rendezvous"` (adding or removing one of n nodes moves about
---1/n of the keys). Set it the same on every router.
---@param group integer
---@param mode "modulo"|"rendezvous"
---@return true? ok
---@return "invalid-param"? err
---@return string? detail
function Manager.set_hash_mode(group, mode) end

---Topics one stream may subscribe to (default 4,096).
---@param n integer
---@return true? ok
function Manager.set_max_subscriptions(n) end

---Topics the manager keeps (default 65,536).
---@param n integer
---@return true? ok
function Manager.set_max_topics(n) end

---Bytes of retained messages the manager keeps (default 64 MiB).
---@param bytes integer
---@return true? ok
function Manager.set_max_retained_bytes(bytes) end

---What listeners and streams share. Read-only fields; add your own freely.
---@class luna.Socket
---@field token integer # unique in the process; what `mgr.route` takes
---@field ip string
---@field port integer
local Socket = {}

---Closes it (a stream writes what was queued first). Callbacks stop.
---@return boolean was_open
function Socket.close() end

---A listener: stays open, referenced or not, until closed.
---@class luna.Listener: luna.Socket
---@field on_accept? fun(stream: luna.Stream) # a new connection (secured first, when asked); a raw listener's are `luna.RawStream`s
local Listener = {}

---Options shared by every kind of stream.
---@class luna.StreamBase: luna.Socket
---@field on_connect? fun(result: luna.ConnectResult, detail?: string) # outcome of `mgr.connect`
---@field on_error? fun(err: luna.NetError) # the stream is closed after it
local StreamBase = {}

---Idle timeout: closed with `timeout` after `ms` without receiving a byte (0 = off, the default).
---@param ms integer
---@return true? ok
---@return luna.NetError? err # `closed` or `invalid-param`
---@return string? detail
function StreamBase.set_timeout(ms) end

---TCP_NODELAY (default true).
---@param on? boolean # nil means true
---@return true? ok
---@return "closed"? err
function StreamBase.set_nodelay(on) end

---A luna stream: messages are argument lists (MessagePack). Stays open,
---referenced or not, until it is closed.
---@class luna.Stream: luna.StreamBase
---@field on_call? fun(msg: any, ...: any) # every message received
---@field on_recv? fun(msg: any, ...: any) # seed spelling, used when `on_call` is not set
---@field on_connected? fun() # seed spelling: called after a successful connect
---@field on_forward_error? fun(err: luna.ForwardError, mode: luna.ForwardMode, target: integer, msg: any, ...: any) # a forward the router could not deliver
---@field on_call_failed? fun(session: integer, err: luna.ForwardError, mode: luna.ForwardMode, target: integer) # set by luna.rpc: a tracked call failed
---@field on_broadcast_targets? fun(session: integer, ids: integer[]) # set by luna.rpc: who a broadcast call reached
local Stream = {}

---Serializes the arguments as one message and queues it (written at the end
---of the pass). A function, userdata, thread, cycle or table deeper than 32
---levels fails with a message naming it and where; nothing is sent then.
---@param msg any
---@param ... any
---@return integer? bytes # bytes queued
---@return luna.NetError|string? err # `closed`, `send-buffer-full`, `package-too-large`, `invalid-param`, or what cannot be sent
---@return string? detail
function Stream.call(msg, ...) end

---Sets the kernel receive buffer.
---@param bytes integer
---@return true? ok
---@return luna.NetError? err
---@return string? detail
function Stream.set_recv_buffer_size(bytes) end

---Most unsent output before `send-buffer-full` (default 64 MiB).
---@param bytes integer
---@return true? ok
---@return luna.NetError? err
---@return string? detail
function Stream.set_send_buffer_size(bytes) end

---Through a router: to one service.
---@param service_id luna.ServiceId
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
---@return string? detail
function Stream.forward_target(service_id, msg, ...) end

---Through a router: to a group's master (the explicit one, else the first live node by id).
---@param group integer
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
---@return string? detail
function Stream.forward_master(group, msg, ...) end

---Through a router: to a random live node of a group.
---@param group integer
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
---@return string? detail
function Stream.forward_random(group, msg, ...) end

---Through a router: to every live node of a group, once.
---@param group integer
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
---@return string? detail
function Stream.forward_broadcast(group, msg, ...) end

---Through a router: to node `key % count` of a group (sorted by id, past
---token-0 slots); string keys hash with 64-bit FNV-1a (`luna.hash_key`).
---@param group integer
---@param key integer|string
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
---@return string? detail
function Stream.forward_hash(group, key, msg, ...) end

---Publishes `msg, ...` on `topic` through the router at the other end: every
---subscriber gets it (as `on_call(msg, ...)`); with `retain`, the router
---keeps it for later subscribers.
---@param topic string # 1 to 255 bytes
---@param retain boolean
---@param msg any
---@param ... any
---@return integer? bytes
---@return luna.NetError|string? err
---@return string? detail
function Stream.publish(topic, retain, msg, ...) end

---A raw stream (`framing = "raw"`): bytes as they come, for text protocols.
---@class luna.RawStream: luna.StreamBase
---@field on_data? fun(bytes: string) # each chunk read
local RawStream = {}

---Queues bytes.
---@param bytes string
---@return integer? bytes_queued
---@return luna.NetError? err
---@return string? detail
function RawStream.write(bytes) end

---Sets the kernel receive buffer.
---@param bytes integer
---@return true? ok
---@return luna.NetError? err
---@return string? detail
function RawStream.set_recv_buffer_size(bytes) end

---Most unsent output before `send-buffer-full`.
---@param bytes integer
---@return true? ok
---@return luna.NetError? err
---@return string? detail
function RawStream.set_send_buffer_size(bytes) end

---A Redis connection (`mgr.connect_redis`): commands out, replies in order.
---@class luna.RedisStream: luna.StreamBase
---@field on_reply? fun(value: any, err?: string) # each reply: a string, integer, nil, array table (with n), or nil and the error reply
local RedisStream = {}

---Queues one command: `stream.command("SET", "k", "v")`.
---@param name string
---@param ... string|number
---@return integer? bytes
---@return luna.NetError? err
---@return string? detail
function RedisStream.command(name, ...) end

------------------------------------------------------------------------
-- The luna module

---The luna core module: the global `luna`, also `require("luna")` and `require("lbus")`.
---@class luna
---@field version string # luna's version
---@field args table<integer, string> # the script arguments; `args[0]` is the entry
---@field runtime_dir? string # `--runtime DIR` / `LUNA_RUNTIME`, nil for the built-in runtime
---@field options luna.Options # what the command line asks the runtime to start
---@field arch string # the CPU architecture (for the default `package.cpath`)
---@field log luna.log # logging: `luna.log.info(...)`
---@field metrics luna.metrics # script metrics (`require("luna.metrics")`)
---@field quit_flush_seconds number # at most this long to flush output when quitting (default 5)
---@field default_quit_signal fun(signo: integer) # the runtime's own `on_quit_signal` (sets `luna_quit_flag`)
luna = {}

---Milliseconds of a monotonic clock.
---@return integer
function luna.get_time_ms() end

---Nanoseconds of a monotonic clock.
---@return integer
function luna.get_time_ns() end

---One pass of the loop: waits up to `ms` (nil: until the next event or timer)
---and handles everything. Not from inside a callback.
---@param ms? integer
---@return integer handled
function luna.wait(ms) end

---Writes every stream's pending output, waiting at most `ms` (default 5000).
---@param ms? integer
---@return boolean done # false if output was left when the time ran out
function luna.flush(ms) end

---Low-level timer: calls `fn` after `delay_ms`, then every `period_ms` if
---given. Prefer `luna.timer` / `luna.interval`.
---@param delay_ms integer
---@param period_ms integer?
---@param fn function
---@return integer? id
---@return string? err
function luna.timer_start(delay_ms, period_ms, fn) end

---Cancels a timer by id.
---@param id integer
---@return boolean? pending # true if it was pending
---@return string? err
function luna.timer_cancel(id) end

---A new socket manager. `max_fd` bounds its open listeners and streams
---(default 65,536; past it `too-many-connection`). Only a `max_fd` that is
---not an integer > 0 fails: nil, `invalid-param`, detail.
---@param max_fd? integer
---@return luna.Manager mgr
---@return "invalid-param"? err
---@return string? detail
function luna.create_socket_mgr(max_fd) end

---Every manager's counters, with uptime, timers, open files and dropped log lines.
---@return luna.ProcessStats
function luna.process_stats() end

---Every open listener and stream.
---@return luna.ConnectionInfo[]
function luna.connections() end

---The id of service `group.index`: `luna.service_id(2, 1)` or `luna.service_id("2.1")`.
---@param group integer|string
---@param index? integer
---@return integer? id
---@return "invalid-param"? err
---@return string? detail
function luna.service_id(group, index) end

---The group of a service id.
---@param id integer
---@return integer? group
---@return "invalid-param"? err
---@return string? detail
function luna.service_group(id) end

---The index of a service id within its group.
---@param id integer
---@return integer? index
---@return "invalid-param"? err
---@return string? detail
function luna.service_index(id) end

---The name of a service id: `"2.1"`.
---@param id integer
---@return string? name
---@return "invalid-param"? err
---@return string? detail
function luna.service_name(id) end

---The hash `forward_hash` uses for a key (integers as themselves, strings by FNV-1a).
---@param key integer|string
---@return integer? hash
---@return "invalid-param"? err
---@return string? detail
function luna.hash_key(key) end

---The absolute canonical path of an existing file.
---@param path string
---@return string? real
---@return string? err
function luna.realpath(path) end

---A message with a traceback (a message handler for `xpcall`).
---@param message any
---@return string
function luna.traceback(message) end

---Calls `fn` once after `ms` milliseconds. Raises an error on bad arguments.
---@param ms number
---@param fn fun()
---@return luna.TimerHandle
function luna.timer(ms, fn) end

---Calls `fn` every `ms` milliseconds (> 0) until cancelled.
---@param ms number
---@param fn fun()
---@return luna.TimerHandle
function luna.interval(ms, fn) end

---Cancels a timer by handle or id.
---@param timer luna.TimerHandle|integer
---@return boolean pending
function luna.cancel_timer(timer) end

---The trace id of the call or message being handled here (luna.rpc), or nil.
---Log lines written meanwhile carry it as `[trace=...]`.
---@return string?
function luna.trace_id() end

---Runs `fn(...)` with `trace` as the current trace id; returns fn's results.
---@param trace string
---@param fn function
---@return any ...
function luna.with_trace(trace, fn, ...) end

---Resumes a coroutine; an error in it is logged with its traceback.
---@param co thread
---@param ... any
---@return boolean ok
---@return any ...
function luna.resume(co, ...) end

---Runs `fn(...)` in a coroutine now (pooled: once `fn` returns, that
---coroutine may run other work); errors are logged with a traceback.
---@param fn async fun(...)
---@param ... any
---@return thread co
function luna.go(fn, ...) end

---Suspends the running coroutine for `ms` milliseconds (inside `luna.go` only).
---@async
---@param ms number
function luna.sleep(ms) end

---Checks every imported file now and reloads the changed ones.
---@return integer reloaded
function luna.reload() end

---Runs `fn` on a graceful stop, after `on_stop` and before output is flushed
---(hooks run last registered first).
---@param fn fun()
function luna.at_exit(fn) end

------------------------------------------------------------------------
-- Globals

---The seed name of `luna.create_socket_mgr`.
create_socket_mgr = luna.create_socket_mgr

---The loop ends when this is true (in the entry's environment or `_G`).
---@type boolean?
luna_quit_flag = nil

---Loads a Lua file into its own environment (reads fall through to `_G`,
---writes stay in it) once, watches it and re-runs it there when it changes;
---returns that environment. Relative paths: next to the entry first, then
---the current directory (`.lua` may be left out). Raises an error if the
---file cannot be found, compiled or run.
---@param path string
---@return table env
function import(path) end

---The runtime's main: imports the entry, calls `on_start(...)`, loops until
---`luna_quit_flag`, calls `on_stop()`, runs `luna.at_exit` hooks and flushes.
---@param entry_file string
---@param ... string
function luna_entry(entry_file, ...) end

---SIGTERM and SIGINT call this at once (looked up in the entry's environment,
---then `_G`). The default sets `luna_quit_flag = true` (while `luna.cluster`
---nodes run: drains them first). Define your own to drain differently.
---@param signo integer # 15 SIGTERM, 2 SIGINT
function on_quit_signal(signo) end

------------------------------------------------------------------------
-- Hooks an entry file may define (as plain globals of the entry)

---Called once after the entry file ran, with the script arguments
---(`luna main.lua a b` -> `on_start("a", "b")`). An error exits with status 1.
---@param ... string
function on_start(...) end

---Called when the loop ends (before `luna.at_exit` hooks and the flush).
function on_stop() end

---Called after each successful hot reload of an imported file.
---@param path string # the file's real path
function on_reload(path) end

---If defined, called on every pass instead of the runtime's own wait: it
---drives `mgr.wait(ms)` itself, as in the seeds.
---@param now_ms integer
function on_loop(now_ms) end

return luna
