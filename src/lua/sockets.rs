//! The methods of manager, listener and stream objects (README "Sockets" and "Routers and the cluster").

use std::ffi::{CStr, c_int};
use std::time::Duration;

use mlua::ffi::{self, lua_State};

use super::calls;
use super::host::with_host;
use super::objects::{forget_object, push_listener, push_manager, push_stream};
use super::raw::{Args, integer_arg, push_fail, push_fail_detail, raw_field, upvalue_integer, with_str};
use super::security_options::{Side, security_arg};
use super::{dispatch, event_loop, introspect, pubsub_api};
use crate::codec::resp::encode_command;
use crate::codec::{encode_args, encode_values};
use crate::log;
use crate::net::frame::{Header, Kind, Mode, Route};
use crate::net::{Framing, Manager, NetError, SendError, Token};
use crate::route::{RouteError, hash_bytes, hash_integer, service_id};
use crate::rpc::wire::write_trace_head;

/// What an argument that must be a service id should look like.
const SERVICE_ID_EXPECTED: &str = "service id (argument #1) must be \"group.index\" or an integer group << 16 | index";
/// What an argument that must be a group should look like.
const GROUP_EXPECTED: &str = "group (argument #1) must be an integer 1-255";

/// Default connect timeout when the script gives none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `max_fd` when the script gives none.
const DEFAULT_MAX_FD: usize = 65_536;

type Methods = &'static [(&'static CStr, ffi::lua_CFunction)];

/// Methods of a manager table (upvalue: manager index).
pub const MANAGER_METHODS: Methods = &[
    (c"wait", mgr_wait),
    (c"listen", mgr_listen),
    (c"connect", mgr_connect),
    (c"connect_redis", mgr_connect_redis),
    (c"set_package_size", mgr_set_package_size),
    (c"route", mgr_route),
    (c"register", mgr_route),
    (c"set_master", mgr_set_master),
    (c"stats", introspect::mgr_stats),
    (c"set_max_tracked_calls", mgr_set_max_tracked_calls),
    (c"set_max_pending_input", mgr_set_max_pending_input),
    (c"set_frame_timeout", mgr_set_frame_timeout),
    (c"set_max_ids", mgr_set_max_ids),
    (c"subscribe", pubsub_api::mgr_subscribe),
    (c"unsubscribe", pubsub_api::mgr_unsubscribe),
    (c"set_hash_mode", pubsub_api::mgr_set_hash_mode),
    (c"set_max_subscriptions", pubsub_api::mgr_set_max_subscriptions),
    (c"set_max_topics", pubsub_api::mgr_set_max_topics),
    (c"set_max_retained_bytes", pubsub_api::mgr_set_max_retained_bytes),
];

/// Methods of a listener table (upvalue: token).
pub const LISTENER_METHODS: Methods = &[(c"close", socket_close)];

/// Methods of a Redis stream table (upvalue: token).
pub const REDIS_METHODS: Methods = &[
    (c"command", redis_command),
    (c"close", socket_close),
    (c"set_timeout", stream_set_timeout),
    (c"set_nodelay", stream_set_nodelay),
];

/// Methods of a raw stream table (upvalue: token): bytes in (`on_data`), bytes out.
pub const RAW_METHODS: Methods = &[
    (c"write", raw_write),
    (c"close", socket_close),
    (c"set_timeout", stream_set_timeout),
    (c"set_nodelay", stream_set_nodelay),
    (c"set_recv_buffer_size", stream_set_recv_buffer_size),
    (c"set_send_buffer_size", stream_set_send_buffer_size),
];

/// Methods of a stream table (upvalue: token).
pub const STREAM_METHODS: Methods = &[
    (c"call", stream_call),
    (c"close", socket_close),
    (c"set_timeout", stream_set_timeout),
    (c"set_nodelay", stream_set_nodelay),
    (c"set_recv_buffer_size", stream_set_recv_buffer_size),
    (c"set_send_buffer_size", stream_set_send_buffer_size),
    (c"forward_target", stream_forward_target),
    (c"forward_master", stream_forward_master),
    (c"forward_random", stream_forward_random),
    (c"forward_broadcast", stream_forward_broadcast),
    (c"forward_hash", stream_forward_hash),
    (c"publish", pubsub_api::stream_publish),
    (c"_forward", stream_forward_tracked),
    (c"_cancel", stream_cancel),
    (c"_tforward", stream_forward_traced),
    (c"_call", calls::stream_call),
    (c"_rcall", calls::stream_routed_call),
    (c"_reply", calls::stream_reply),
];

/// `luna.create_socket_mgr(max_fd)`: a new manager table.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn create_socket_mgr(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let max_fd = if args.is_none_or_nil(1) {
        DEFAULT_MAX_FD
    } else {
        match args.integer(1) {
            Some(n) if n > 0 => n as usize,
            _ => {
                // SAFETY: the stack contract of a C function.
                return unsafe {
                    push_fail_detail(
                        state,
                        NetError::InvalidParam,
                        "max_fd (argument #1) must be an integer > 0",
                    )
                };
            }
        }
    };
    let mgr = with_host(|host| host.net.create_manager(max_fd));
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_manager(state, mgr) };
    1
}

/// The index of the manager whose method is running.
///
/// # Safety
/// The [stack contract](super::raw#safety), on the state of a running
/// manager method (a closure `push_manager` made, its upvalue the index).
pub(super) unsafe fn manager_index(state: *mut lua_State) -> u32 {
    // SAFETY: forwarded from the caller.
    unsafe { upvalue_integer(state) as u32 }
}

/// The token of the socket whose method is running.
///
/// # Safety
/// The [stack contract](super::raw#safety), on the state of a running
/// listener or stream method (a closure `objects` made, its upvalue the token).
pub(super) unsafe fn token(state: *mut lua_State) -> Token {
    // SAFETY: forwarded from the caller.
    unsafe { upvalue_integer(state) as Token }
}

/// A timeout in milliseconds: None for nil or negative (wait for events).
pub fn timeout_arg(args: &Args, index: c_int) -> Option<Duration> {
    let ms = args.number(index)?;
    (ms >= 0.0).then(|| Duration::from_secs_f64(ms.min(1e9) / 1000.0))
}

/// `mgr.wait([ms])`: one loop pass, waiting at most `ms` (default 0); returns what it handled.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_wait(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before the pass runs callbacks.
    let timeout = timeout_arg(&unsafe { Args::new(state) }, 1).unwrap_or(Duration::ZERO);
    // SAFETY: the stack contract of a C function, with no host borrow.
    unsafe {
        let handled = event_loop::run_pass_or_raise(state, Some(timeout));
        ffi::lua_pushinteger(state, handled as i64);
    }
    1
}

fn port_arg(args: &Args, index: c_int) -> Option<u16> {
    args.integer(index).and_then(|port| u16::try_from(port).ok())
}

/// `mgr.listen(ip, port[, backlog | options])`: options = { backlog, secret, tls = {...}, handshake_timeout_ms }.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_listen(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; the arguments stay in place until it returns.
    let args = unsafe { Args::new(state) };
    // SAFETY: the stack contract of a C function, with no host borrow during
    // the pushes; the options table is read at an argument slot.
    unsafe {
        let Some(ip) = args.str(1) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "ip (argument #1) must be an address string",
            );
        };
        let Some(port) = port_arg(&args, 2) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "port (argument #2) must be an integer 0-65535",
            );
        };
        let security = match security_arg(&args, 3, Side::Listen) {
            Ok(security) => security,
            Err(why) => {
                return push_fail_detail(state, NetError::InvalidParam, &format!("options (argument #3): {why}"));
            }
        };
        let backlog = match args.kind(3) {
            ffi::LUA_TTABLE => {
                let backlog = raw_field(state, 3, c"backlog");
                let value = integer_arg(state, -1);
                ffi::lua_pop(state, 1);
                if backlog == ffi::LUA_TNIL { None } else { value }
            }
            _ => args.integer(3),
        };
        let backlog = backlog.unwrap_or(1024).clamp(1, i64::from(i32::MAX)) as i32;
        let framing = match framing_option(&args, 3, Framing::Luna) {
            Ok(framing) => framing,
            Err(why) => {
                return push_fail_detail(state, NetError::InvalidParam, &format!("options (argument #3): {why}"));
            }
        };
        let mgr = manager_index(state);
        let result = with_host(|host| {
            let token = host.net.listen(mgr, ip, port, backlog, security, framing)?;
            let listener = host.net.listener(token).expect("just opened");
            Ok((token, listener.ip.clone(), listener.port))
        });
        match result {
            Ok((token, ip, port)) => push_listener(state, token, &ip, port),
            Err((error, None)) => return push_fail(state, error),
            Err((error, Some(detail))) => {
                log::warn(&format!("listen on {ip}:{port} failed: {detail}"));
                return push_fail_detail(state, error, &detail);
            }
        }
    }
    1
}

/// `mgr.connect(host, port, timeout_ms[, options])`: a luna (or raw) stream.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_connect(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { connect(state, Framing::Luna) }
}

/// `mgr.connect_redis(host, port, timeout_ms[, options])`: a stream that sends commands
/// (`stream.command(...)`) and receives replies (`on_reply(value, err)`).
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_connect_redis(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { connect(state, Framing::Resp) }
}

/// The `framing` field of an options table ("luna" or "raw"), else `default`.
///
/// # Safety
/// The [stack contract](super::raw#safety) (`args` vouches for the index).
unsafe fn framing_option(args: &Args, index: c_int, default: Framing) -> Result<Framing, String> {
    if args.kind(index) != ffi::LUA_TTABLE {
        return Ok(default);
    }
    let state = args.state();
    // SAFETY: a table at an argument slot; the field pushed is popped again,
    // and its bytes are read only inside `with_str`.
    unsafe {
        let framing = match raw_field(state, index, c"framing") {
            ffi::LUA_TNIL => Ok(default),
            _ => with_str(state, -1, |name| name.and_then(Framing::from_name))
                .ok_or_else(|| "framing must be \"luna\" or \"raw\"".to_string()),
        };
        ffi::lua_pop(state, 1);
        framing
    }
}

/// `mgr.connect(host, port, timeout_ms[, options])`.
///
/// # Safety
/// The stack contract of a running manager method (`manager_index`).
unsafe fn connect(state: *mut lua_State, framing: Framing) -> c_int {
    // SAFETY: a running C function; the arguments stay in place until it returns.
    let args = unsafe { Args::new(state) };
    // SAFETY: the stack contract of a C function, with no host borrow during
    // the pushes; the options table is read at an argument slot.
    unsafe {
        let Some(host_name) = args.str(1) else {
            return push_fail_detail(state, NetError::InvalidParam, "host (argument #1) must be a string");
        };
        let Some(port) = port_arg(&args, 2) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "port (argument #2) must be an integer 0-65535",
            );
        };
        let timeout = match timeout_arg(&args, 3) {
            Some(timeout) if !timeout.is_zero() => timeout,
            _ => DEFAULT_CONNECT_TIMEOUT,
        };
        let security = match security_arg(&args, 4, Side::Connect(host_name)) {
            Ok(security) => security,
            Err(why) => {
                return push_fail_detail(state, NetError::InvalidParam, &format!("options (argument #4): {why}"));
            }
        };
        let framing = match framing {
            Framing::Luna => match framing_option(&args, 4, framing) {
                Ok(framing) => framing,
                Err(why) => {
                    let why = format!("options (argument #4): {why}");
                    return push_fail_detail(state, NetError::InvalidParam, &why);
                }
            },
            other => other,
        };
        let mgr = manager_index(state);
        let connected = with_host(|host| {
            host.net
                .connect(mgr, host_name, port, timeout, framing, security.as_deref())
        });
        match connected {
            Ok(token) => push_stream(state, token, host_name, port, framing),
            Err((error, Some(detail))) => return push_fail_detail(state, error, &detail),
            Err((error, None)) => return push_fail(state, error),
        }
    }
    1
}

/// `mgr.set_package_size(bytes)`: the largest message the manager's streams take.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_set_package_size(state: *mut lua_State) -> c_int {
    let why = "bytes (argument #1) must be an integer > 0";
    // SAFETY: Lua called this manager method.
    unsafe { set_manager_value(state, 1, why, |m, n| m.package_size = n as usize) }
}

/// A service id given as an integer or as `"group.index"`.
fn service_id_arg(args: &Args, index: c_int) -> Option<u32> {
    match args.kind(index) {
        ffi::LUA_TSTRING => args.str(index).and_then(service_id::parse),
        _ => args
            .integer(index)
            .and_then(|id| u32::try_from(id).ok())
            .filter(|&id| service_id::is_valid(id)),
    }
}

fn group_arg(args: &Args, index: c_int) -> Option<u32> {
    args.integer(index)
        .filter(|&g| service_id::is_valid_group(g))
        .map(|g| g as u32)
}

/// `mgr.route(id, token[, is_master])` (also `mgr.register`): routes a service id to a
/// stream; token 0 keeps the slot, nil removes it.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_route(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let Some(id) = service_id_arg(&args, 1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, SERVICE_ID_EXPECTED) };
    };
    let token = if args.is_none_or_nil(2) {
        None
    } else {
        match args.integer(2) {
            Some(token) => Some(token as Token),
            None => {
                let why = "token (argument #2) must be a stream's token, 0 or nil";
                // SAFETY: the stack contract of a C function.
                return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
            }
        }
    };
    let is_master = args.boolean(3);
    // SAFETY: a running manager method.
    let mgr = unsafe { manager_index(state) };
    let result = with_host(|host| {
        let manager = host.net.manager(mgr).ok_or(NetError::InvalidParam)?;
        match manager.routes.set_limited(id, token, manager.limits.max_ids) {
            Ok(()) => {}
            Err(RouteError::InvalidId) => return Err(NetError::InvalidParam),
            Err(RouteError::TooManyIds) => {
                manager.stats.ids_refused += 1;
                return Err(NetError::TooManyIds);
            }
        }
        if is_master && let Some(token) = token {
            manager.routes.set_master(service_id::group(id), token);
        }
        Ok(())
    });
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe {
        if let Err(error) = result {
            return push_fail(state, error);
        }
        ffi::lua_pushboolean(state, 1);
    }
    1
}

/// Applies `apply(manager, n)` for a non-negative integer argument `n`.
///
/// # Safety
/// The stack contract of a running manager method (`manager_index`).
pub(super) unsafe fn set_limit(state: *mut lua_State, apply: fn(&mut Manager, u64)) -> c_int {
    let why = "the limit (argument #1) must be an integer >= 0";
    // SAFETY: forwarded from the caller.
    unsafe { set_manager_value(state, 0, why, apply) }
}

/// Applies `apply(manager, n)` for an integer argument `n >= min`; else
/// fails with `why`.
///
/// # Safety
/// As [`set_limit`].
unsafe fn set_manager_value(state: *mut lua_State, min: i64, why: &str, apply: fn(&mut Manager, u64)) -> c_int {
    // SAFETY: a running C function; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let Some(value) = args.integer(1).filter(|&n| n >= min) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    // SAFETY: a running manager method (the caller's promise).
    let mgr = unsafe { manager_index(state) };
    with_host(|host| host.net.manager(mgr).map(|m| apply(m, value as u64)));
    // SAFETY: the stack contract of a C function.
    unsafe { ffi::lua_pushboolean(state, 1) };
    1
}

/// `mgr.set_max_tracked_calls(n)`: calls one connection may have tracked at once.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_set_max_tracked_calls(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe { set_limit(state, |m, n| m.limits.max_tracked_calls = n as usize) }
}

/// `mgr.set_max_pending_input(bytes)`: unfinished-frame bytes over all streams.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_set_max_pending_input(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe { set_limit(state, |m, n| m.limits.max_pending_input = n as usize) }
}

/// `mgr.set_frame_timeout(ms)`: how long a started frame may take; 0 = no limit.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_set_frame_timeout(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe {
        set_limit(state, |m, ms| {
            m.limits.frame_timeout = (ms > 0).then(|| Duration::from_millis(ms))
        })
    }
}

/// `mgr.set_max_ids(n)`: service ids one stream may hold in the route table.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_set_max_ids(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe { set_limit(state, |m, n| m.limits.max_ids = n as usize) }
}

/// `mgr.set_master(group, token)`: the stream `forward_master` picks for a group.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn mgr_set_master(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let Some(group) = group_arg(&args, 1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, GROUP_EXPECTED) };
    };
    let Some(token) = args.integer(2) else {
        // SAFETY: the stack contract of a C function.
        return unsafe {
            push_fail_detail(
                state,
                NetError::InvalidParam,
                "token (argument #2) must be a stream's token or 0",
            )
        };
    };
    // SAFETY: a running manager method.
    let mgr = unsafe { manager_index(state) };
    with_host(|host| {
        host.net
            .manager(mgr)
            .map(|m| m.routes.set_master(group, token as Token))
    });
    // SAFETY: the stack contract of a C function.
    unsafe { ffi::lua_pushboolean(state, 1) };
    1
}

/// `socket.close()`: closes a listener or stream; true if it was open.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn socket_close(state: *mut lua_State) -> c_int {
    // SAFETY: a running socket method.
    let token = unsafe { token(state) };
    let was_open = with_host(|host| host.net.close(token));
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe {
        if was_open {
            dispatch::stream_closed(state, token, NetError::Closed);
        }
        forget_object(state, token);
        ffi::lua_pushboolean(state, c_int::from(was_open));
    }
    1
}

/// Pushes the result of queueing a frame: bytes, or nil and the error.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub(super) unsafe fn push_send_result(state: *mut lua_State, result: Result<usize, SendError<String>>) -> c_int {
    // SAFETY: the contract leaves room for two values.
    unsafe {
        match result {
            Ok(bytes) => {
                ffi::lua_pushinteger(state, bytes as i64);
                1
            }
            Err(SendError::Encode(message)) => push_fail(state, &message),
            Err(SendError::Net(error)) => push_fail(state, error),
        }
    }
}

thread_local! {
    /// Where messages are encoded before they are queued (reused, so sending allocates nothing).
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How encoded bytes go out.
pub(super) enum Output<'a> {
    /// As the payload of a luna frame of this kind (with a route header for forwards).
    Frame(Kind, Header<'a>),
    /// As they are (RESP commands).
    Bytes,
}

/// Encodes with `encode` (which reads the Lua stack) while the host is *not*
/// borrowed, then queues the bytes on the stream. Reading Lua values may run
/// Lua code (a finalizer during an allocation), and that code may send too:
/// it then simply encodes into a buffer of its own.
pub(super) fn encode_then_send<E>(
    token: Token,
    output: Output,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<usize, SendError<E>> {
    let mut buffer = ENCODED.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    buffer.clear();
    let result = match encode(&mut buffer) {
        Ok(()) => with_host(|host| {
            let copy = |out: &mut Vec<u8>| {
                out.extend_from_slice(&buffer);
                Ok(())
            };
            match output {
                Output::Frame(kind, route) => host.net.send_with(token, kind, route, copy),
                Output::Bytes => host.net.send_raw(token, copy),
            }
        }),
        Err(error) => Err(SendError::Encode(error)),
    };
    if buffer.capacity() <= KEEP_ENCODED_CAPACITY {
        ENCODED.with(|cell| *cell.borrow_mut() = buffer);
    }
    result
}

/// Encode buffers larger than this are freed after use.
const KEEP_ENCODED_CAPACITY: usize = 256 << 10;

/// Queues the arguments from `first` on as one frame of `kind`.
///
/// # Safety
/// The stack contract of a running stream method (`token`), with `args` its arguments.
pub(super) unsafe fn send_args(args: &Args, kind: Kind, header: Header, first: c_int) -> c_int {
    let state = args.state();
    // SAFETY: a running stream method (the caller's promise).
    let token = unsafe { token(state) };
    let last = args.count();
    // SAFETY: the stack contract of a C function; `first..=last` are argument
    // slots, read by the encoder while the host is not borrowed.
    unsafe {
        if last < first {
            let why = format!("a message (argument #{first}) is required");
            return push_fail_detail(state, NetError::InvalidParam, &why);
        }
        let result = encode_then_send(token, Output::Frame(kind, header), |out| {
            encode_args(state, first, last, out)
        });
        push_send_result(state, result)
    }
}

/// `stream.call(...)`: sends the arguments as one message.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_call(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    unsafe { send_args(&Args::new(state), Kind::Call, Header::None, 1) }
}

/// Queues a forward of the arguments from `first` on.
///
/// # Safety
/// As [`send_args`].
unsafe fn forward(args: &Args, mode: Mode, target: Option<u32>, key: u64, first: c_int) -> c_int {
    let Some(target) = target else {
        let why = if mode == Mode::Target {
            SERVICE_ID_EXPECTED
        } else {
            GROUP_EXPECTED
        };
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(args.state(), NetError::InvalidParam, why) };
    };
    let route = Route::new(mode, target, key, 0);
    // SAFETY: forwarded from the caller.
    unsafe { send_args(args, Kind::Forward, Header::Route(&route), first) }
}

/// `stream.forward_target(id, ...)`: a message for one service, through the router.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_target(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    // SAFETY: a running stream method with its arguments in `args`.
    unsafe { forward(&args, Mode::Target, service_id_arg(&args, 1), 0, 2) }
}

/// Queues a forward to `mode`'s pick in the group of argument 1.
///
/// # Safety
/// A C function's stack contract (a running stream method).
unsafe fn forward_to_group(state: *mut lua_State, mode: Mode) -> c_int {
    // SAFETY: a running stream method; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    // SAFETY: a running stream method with its arguments in `args`.
    unsafe { forward(&args, mode, group_arg(&args, 1), 0, 2) }
}

/// `stream.forward_master(group, ...)`: a message for a group's master.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_master(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method.
    unsafe { forward_to_group(state, Mode::Master) }
}

/// `stream.forward_random(group, ...)`: a message for any member of a group.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_random(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method.
    unsafe { forward_to_group(state, Mode::Random) }
}

/// `stream.forward_broadcast(group, ...)`: a message for every member of a group.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_broadcast(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method.
    unsafe { forward_to_group(state, Mode::Broadcast) }
}

/// The hash of a key: integers (or integral floats) by value, strings by FNV-1a.
pub fn hash_key_arg(args: &Args, index: c_int) -> Option<u64> {
    match args.kind(index) {
        ffi::LUA_TSTRING => args.bytes(index).map(hash_bytes),
        _ => args.integer(index).map(hash_integer),
    }
}

/// `stream.forward_hash(group, key, ...)`: a message for the member a key hashes to.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_hash(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(key) = hash_key_arg(&args, 2) else {
        let why = "key (argument #2) must be an integer or a string";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    // SAFETY: a running stream method with its arguments in `args`.
    unsafe { forward(&args, Mode::Hash, group_arg(&args, 1), key, 3) }
}

/// `stream._tforward(mode, trace, target, [key,] msg, ...)`: a forward
/// carrying a trace id, sent as ("@trace", trace, msg, ...) (luna.cluster's
/// forwards inside a traced handler). The key is there in hash mode only.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_traced(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let (args, stream) = unsafe { (Args::new(state), token(state)) };
    let Some(mode) = args.bytes(1).and_then(Mode::from_name) else {
        let why = "mode (argument #1) must be target, master, random, broadcast or hash";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    let Some(trace) = args.bytes(2) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, "trace (argument #2) must be a string") };
    };
    let target = if mode == Mode::Target {
        service_id_arg(&args, 3)
    } else {
        group_arg(&args, 3)
    };
    let (key, first) = if mode == Mode::Hash {
        (hash_key_arg(&args, 4), 5)
    } else {
        (Some(0), 4)
    };
    let (Some(target), Some(key)) = (target, key) else {
        let why = "target (argument #3) or key (argument #4) is not valid";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    let last = args.count();
    if last < first {
        let why = format!("a message (argument #{first}) is required");
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, &why) };
    }
    let route = Route::new(mode, target, key, 0);
    let output = Output::Frame(Kind::Forward, Header::Route(&route));
    let result = encode_then_send(stream, output, |out| {
        write_trace_head(out, trace, (last - first + 1) as u32);
        // SAFETY: the stack contract; `first..=last` are argument slots, read
        // while the host is not borrowed. The node's forward that called this
        // has no mode and no trace: its message starts two arguments earlier.
        unsafe { encode_values(state, first, last, first - 2, out) }
    });
    // SAFETY: the stack contract of a C function.
    unsafe { push_send_result(state, result) }
}

/// The route of a tracked forward from the arguments `mode, target, key`
/// at `at..at + 2`; the error says which argument is wrong.
pub(super) fn tracked_route(args: &Args, at: c_int, session: u32) -> Result<Route, String> {
    let Some(mode) = args.bytes(at).and_then(Mode::from_name) else {
        return Err(format!(
            "mode (argument #{at}) must be target, master, random, broadcast or hash"
        ));
    };
    let target = if mode == Mode::Target {
        service_id_arg(args, at + 1)
    } else {
        group_arg(args, at + 1)
    };
    let key = if mode == Mode::Hash {
        hash_key_arg(args, at + 2)
    } else {
        Some(0)
    };
    let (Some(target), Some(key)) = (target, key) else {
        let (t, k) = (at + 1, at + 2);
        return Err(format!("target (argument #{t}) or key (argument #{k}) is not valid"));
    };
    Ok(Route::new(mode, target, key, session))
}

/// `stream._forward(mode, target, key, session, is_reply, msg, ...)`: a forward
/// whose answer the router tracks (used by the RPC layer for answers and
/// broadcast calls).
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_forward_tracked(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(session) = args.integer(4).and_then(|s| u32::try_from(s).ok()) else {
        let why = "session (argument #4) must be a u32";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    let mut route = match tracked_route(&args, 1, session) {
        Ok(route) => route,
        // SAFETY: the stack contract of a C function.
        Err(why) => return unsafe { push_fail_detail(state, NetError::InvalidParam, &why) },
    };
    route.is_reply = args.boolean(5);
    // SAFETY: a running stream method with its arguments in `args`.
    unsafe { send_args(&args, Kind::Forward, Header::Route(&route), 6) }
}

/// `stream._cancel(session)`: tells the router a tracked call was given up.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_cancel(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` is dropped before it returns.
    let (token, args) = unsafe { (token(state), Args::new(state)) };
    let Some(session) = args.integer(1).and_then(|s| u32::try_from(s).ok()) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, "session (argument #1) must be a u32") };
    };
    let result = with_host(|host| {
        host.net.send_with(token, Kind::Cancel, Header::None, |out| {
            out.extend_from_slice(&session.to_be_bytes());
            Ok::<(), String>(())
        })
    });
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_send_result(state, result) }
}

/// `stream.write(bytes)`: queues bytes on a raw stream.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn raw_write(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let (token, args) = unsafe { (token(state), Args::new(state)) };
    let Some(bytes) = args.bytes(1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, "bytes (argument #1) must be a string") };
    };
    // Copying the argument's bytes calls no Lua API: allowed under the borrow.
    let result = with_host(|host| {
        host.net.send_raw(token, |out| {
            out.extend_from_slice(bytes);
            Ok::<(), String>(())
        })
    });
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_send_result(state, result) }
}

/// `stream.command(name, args...)`: queues one Redis command.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn redis_command(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let (token, args) = unsafe { (token(state), Args::new(state)) };
    let last = args.count();
    // SAFETY: the stack contract of a C function; `1..=last` are argument
    // slots, read by the encoder while the host is not borrowed.
    unsafe {
        if last < 1 {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "a command name (argument #1) is required",
            );
        }
        let result = encode_then_send(token, Output::Bytes, |out| encode_command(state, 1, last, out));
        push_send_result(state, result)
    }
}

/// `stream.set_timeout(ms)`: closes the stream after `ms` without input (0: never).
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_set_timeout(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` is dropped before it returns.
    let (token, args) = unsafe { (token(state), Args::new(state)) };
    let Some(ms) = args.integer(1).filter(|&ms| ms >= 0) else {
        // SAFETY: the stack contract of a C function.
        return unsafe {
            push_fail_detail(
                state,
                NetError::InvalidParam,
                "ms (argument #1) must be an integer >= 0",
            )
        };
    };
    let ok = with_host(|host| host.net.set_idle_timeout(token, Duration::from_millis(ms as u64)));
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_bool_or_closed(state, ok) }
}

/// `stream.set_nodelay([on])`: TCP_NODELAY (on unless `false`).
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_set_nodelay(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` is dropped before it returns.
    let (token, args) = unsafe { (token(state), Args::new(state)) };
    let nodelay = args.is_none_or_nil(1) || args.boolean(1);
    let ok = with_host(|host| host.net.set_nodelay(token, nodelay));
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_bool_or_closed(state, ok) }
}

/// Applies `apply(net, token, bytes)` for a positive integer argument `bytes`.
///
/// # Safety
/// The stack contract of a running stream method (`token`).
unsafe fn buffer_size(state: *mut lua_State, apply: fn(&mut crate::net::NetCore, Token, usize) -> bool) -> c_int {
    // SAFETY: a running stream method (the caller's promise).
    let (token, args) = unsafe { (token(state), Args::new(state)) };
    let Some(bytes) = args.integer(1).filter(|&n| n > 0) else {
        // SAFETY: the stack contract of a C function.
        return unsafe {
            push_fail_detail(
                state,
                NetError::InvalidParam,
                "bytes (argument #1) must be an integer > 0",
            )
        };
    };
    let ok = with_host(|host| apply(&mut host.net, token, bytes as usize));
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_bool_or_closed(state, ok) }
}

/// `stream.set_recv_buffer_size(bytes)`: SO_RCVBUF.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_set_recv_buffer_size(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method.
    unsafe { buffer_size(state, crate::net::NetCore::set_recv_buffer_size) }
}

/// `stream.set_send_buffer_size(bytes)`: SO_SNDBUF.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn stream_set_send_buffer_size(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method.
    unsafe { buffer_size(state, crate::net::NetCore::set_send_buffer_size) }
}

/// Pushes true, or `nil, "closed"` when the stream is gone.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn push_bool_or_closed(state: *mut lua_State, ok: bool) -> c_int {
    // SAFETY: the contract leaves room for two values.
    unsafe {
        if ok {
            ffi::lua_pushboolean(state, 1);
            1
        } else {
            push_fail(state, NetError::Closed)
        }
    }
}
