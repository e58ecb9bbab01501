//! Callbacks into scripts: a stream's input (luna frames, Redis replies, raw
//! bytes), forward errors, and the notices the network queues (accepted,
//! connected, failed, closed).
//!
//! A socket's handler is found in one place, [`push_handler`]; a runtime
//! hook in one other, [`push_hook`]. Every function here that takes a state
//! keeps the [stack contract](super::raw#safety) and leaves the stack as it
//! found it.

use std::ffi::{CStr, c_int};

use mlua::ffi::{self, lua_State};

use super::calls;
use super::host::{refs, with_host};
use super::objects::{forget_object, push_object, push_stream};
use super::raw::{pcall_logged, push_ref, push_str};
use crate::codec::{decode_args, decode_values, resp};
use crate::log;
use crate::net::frame::PREFIX_LEN;
use crate::net::frame::{Body, ForwardFailure, Mode, Route};
use crate::net::{Framing, NetError, Notice, ReadResult, Token, next_frame};
use crate::rpc::wire::{self, Head};

/// What [`push_handler`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The handler is on top of the stack.
    Found,
    /// The socket's table has none of the names (nothing pushed).
    NoHandler,
    /// The socket has no table: it is closed (nothing pushed).
    NoObject,
}

/// Pushes the first function among `names` on the table of socket `token`,
/// and nothing else; pushes nothing when there is none. Raw reads: a
/// handler is a plain field, never an `__index` lookup.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn push_handler(state: *mut lua_State, token: Token, names: &[&CStr]) -> Lookup {
    // SAFETY: push_object pushes exactly one value (the table or nil); each
    // raw_field pushes one more, which is popped or kept in the table's place.
    unsafe {
        if !push_object(state, token) {
            ffi::lua_pop(state, 1);
            return Lookup::NoObject;
        }
        for name in names {
            if super::raw::raw_field(state, -1, name) == ffi::LUA_TFUNCTION {
                ffi::lua_remove(state, -2);
                return Lookup::Found;
            }
            ffi::lua_pop(state, 1);
        }
        ffi::lua_pop(state, 1);
    }
    Lookup::NoHandler
}

/// Calls `object[name](args...)` if the object and the handler exist; true if called.
/// `push_args` pushes the arguments and returns how many.
///
/// # Safety
/// The [stack contract](super::raw#safety); `push_args` keeps it too and
/// pushes exactly the count it returns.
pub unsafe fn call_handler(state: *mut lua_State, token: Token, name: &CStr, push_args: &dyn Fn() -> c_int) -> bool {
    // SAFETY: the handler is on top when found; its arguments go above it
    // and the call consumes both.
    unsafe {
        let top = ffi::lua_gettop(state);
        if push_handler(state, token, &[name]) != Lookup::Found {
            return false;
        }
        let count = push_args();
        pcall_logged(state, count, &|| {
            format!("{} of socket {token}", name.to_string_lossy())
        });
        ffi::lua_settop(state, top);
        true
    }
}

/// Pushes the runtime hook in registry `slot` when it is a function; true if pushed.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn push_hook(state: *mut lua_State, slot: c_int) -> bool {
    // SAFETY: push_ref pushes one value, popped again unless it is the hook.
    unsafe {
        push_ref(state, slot);
        if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
            return true;
        }
        ffi::lua_pop(state, 1);
    }
    false
}

/// Tells the runtime (the RPC layer) that a stream is gone: `hooks.on_stream_closed(token, err)`.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn stream_closed(state: *mut lua_State, token: Token, error: NetError) {
    // SAFETY: the contract, passed on; the hook and its two arguments are
    // pushed and consumed by the call.
    unsafe {
        calls::fail_stream_calls(state, token);
        if !push_hook(state, refs().on_stream_closed) {
            return;
        }
        ffi::lua_pushinteger(state, token as i64);
        push_str(state, error.as_str());
        pcall_logged(state, 2, &|| "on_stream_closed".into());
    }
}

/// Reads a stream once and handles its input: every complete frame, reply,
/// or the raw bytes, by the stream's framing.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn read_and_dispatch(state: *mut lua_State, token: Token) {
    let ReadResult::Data(input) = with_host(|host| host.net.read(token)) else {
        return;
    };
    // A TLS link may have become secured by this read: announce it before its frames.
    // SAFETY: the caller's contract, passed on (here and in the blocks below);
    // each callee leaves the stack as it found it.
    unsafe { dispatch_notices(state) };
    let (package_size, framing, mut securing) = with_host(|host| {
        (
            host.net.package_size_of(token),
            host.net.framing_of(token),
            host.net.is_securing(token),
        )
    });
    match framing {
        Framing::Luna => {}
        Framing::Resp => {
            // SAFETY: the caller's contract, passed on.
            let consumed = unsafe { dispatch_replies(state, token, &input.data, package_size) };
            with_host(|host| host.net.give_back_input(token, input, consumed));
            return;
        }
        Framing::Raw => {
            // SAFETY: the caller's contract, passed on; the bytes are copied onto the stack as the one argument.
            let handled = unsafe {
                call_handler(state, token, c"on_data", &|| {
                    ffi::lua_pushlstring(state, input.data.as_ptr().cast(), input.data.len());
                    1
                })
            };
            if !handled {
                log::warn(&format!(
                    "raw stream {token} has no on_data handler: {} bytes dropped",
                    input.data.len()
                ));
            }
            let all = input.data.len();
            with_host(|host| host.net.give_back_input(token, input, all));
            return;
        }
    }
    let mut consumed = 0;
    while consumed < input.data.len() {
        match next_frame(&input.data[consumed..], package_size) {
            Ok(None) => break,
            Ok(Some((body, len))) => {
                consumed += len;
                if securing {
                    // Until the link is secured its frames are the core's handshake.
                    let raw = &input.data[consumed - len + PREFIX_LEN..consumed];
                    let (still, open) =
                        with_host(|host| (host.net.handshake_frame(token, raw), host.net.is_open(token)));
                    securing = still;
                    if !open {
                        break;
                    }
                    if !securing {
                        // Secured: on_accept/on_connect run before the frames that follow.
                        // SAFETY: the caller's contract, passed on.
                        unsafe { dispatch_notices(state) };
                    }
                    continue;
                }
                // SAFETY: the caller's contract, passed on.
                unsafe { handle_frame(state, token, body) };
                // A stream the script closed (or that failed) takes no more input.
                if !with_host(|host| host.net.is_open(token)) {
                    break;
                }
            }
            Err(error) => {
                let peer = peer_name(token);
                // 0x16/0x15 0x03: a TLS handshake or alert record where a frame length should be.
                let tls_record = matches!(input.data.get(..2), Some([0x15 | 0x16, 0x03]));
                let hint = if consumed == 0 && tls_record {
                    " (these are TLS bytes: the peer speaks TLS and this link does not)"
                } else {
                    ""
                };
                log::warn(&format!("closing stream {token} ({peer}): it sent a {error}{hint}"));
                with_host(|host| {
                    host.net.count(token, |stats| stats.bad_packages += 1);
                    host.net.fail(token, error.code());
                });
                break;
            }
        }
    }
    with_host(|host| host.net.give_back_input(token, input, consumed));
}

/// Calls `on_reply(value, err)` for every complete Redis reply; returns the bytes used.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn dispatch_replies(state: *mut lua_State, token: Token, data: &[u8], package_size: usize) -> usize {
    let mut consumed = 0;
    while consumed < data.len() {
        // SAFETY: the handler (or a nil placeholder) and the reply's two
        // values are pushed above `top`, which every branch restores.
        unsafe {
            let top = ffi::lua_gettop(state);
            let has_handler = push_handler(state, token, &[c"on_reply"]) == Lookup::Found;
            if !has_handler {
                ffi::lua_pushnil(state); // placeholder: the reply is parsed and dropped
            }
            match resp::push_reply(state, &data[consumed..], package_size) {
                Ok(resp::Reply::Pushed(len)) => {
                    consumed += len;
                    if has_handler {
                        pcall_logged(state, 2, &|| format!("on_reply of redis stream {token}"));
                    } else {
                        log::warn(&format!(
                            "redis stream {token} has no on_reply handler: a reply was dropped"
                        ));
                    }
                }
                Ok(resp::Reply::Incomplete) => {
                    ffi::lua_settop(state, top);
                    if data.len() - consumed > package_size {
                        log::warn(&format!(
                            "closing redis stream {token}: a reply is larger than the package size"
                        ));
                        with_host(|host| host.net.fail(token, NetError::PackageTooLarge));
                    }
                    break;
                }
                Err(error) => {
                    ffi::lua_settop(state, top);
                    let peer = peer_name(token);
                    log::warn(&format!("closing redis stream {token} ({peer}): bad reply: {error}"));
                    with_host(|host| host.net.fail(token, NetError::BadPackage));
                    break;
                }
            }
            ffi::lua_settop(state, top);
        }
        if !with_host(|host| host.net.is_open(token)) {
            break;
        }
    }
    consumed
}

fn peer_name(token: Token) -> String {
    with_host(|host| host.net.stream(token).map(|s| format!("{}:{}", s.ip, s.port))).unwrap_or_else(|| "closed".into())
}

/// Handles one luna frame of stream `token`.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn handle_frame(state: *mut lua_State, token: Token, body: Body<'_>) {
    match body {
        // SAFETY: the caller's contract, passed on.
        Body::Call(payload) => unsafe { dispatch_message(state, token, payload, true) },
        // SAFETY: the caller's contract, passed on.
        Body::Deliver(payload) => unsafe { dispatch_message(state, token, payload, false) },
        // SAFETY: the caller's contract, passed on.
        Body::ForwardError(failure, route, payload) => unsafe {
            dispatch_forward_error(state, token, failure, &route, payload)
        },
        Body::Forward(route, payload) => with_host(|host| host.net.forward(token, &route, payload)),
        Body::Cancel(session) => with_host(|host| host.net.cancel_call(token, session)),
        Body::Handshake(_) => with_host(|host| host.net.unexpected_handshake(token)),
        Body::Publish { retain, topic, payload } => with_host(|host| host.net.publish(token, retain, topic, payload)),
        Body::Routed(session, ids) => {
            // SAFETY: the contract; two arguments are pushed, the list table
            // taking one slot more while it is filled.
            let handled = unsafe {
                call_handler(state, token, c"on_broadcast_targets", &|| {
                    ffi::lua_pushinteger(state, i64::from(session));
                    ffi::lua_createtable(state, (ids.len() / 4) as c_int, 0);
                    for (at, id) in ids.chunks_exact(4).enumerate() {
                        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
                        ffi::lua_pushinteger(state, i64::from(id));
                        ffi::lua_rawseti(state, -2, at as i64 + 1);
                    }
                    2
                })
            };
            if !handled {
                log::warn(&format!(
                    "stream {token} got the receivers of broadcast call {session} but has no RPC layer \
                     (on_broadcast_targets): ignored"
                ));
            }
        }
    }
}

/// Decodes one message onto the stack and calls the stream's handler
/// (`on_call`, else `on_recv`). `from_peer`: a malformed message closes the
/// stream; a forwarded one is only dropped.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn dispatch_message(state: *mut lua_State, token: Token, payload: &[u8], from_peer: bool) {
    let head = wire::head(payload);
    // Answers and calls the core handles itself.
    let handled = match head {
        // SAFETY: the caller's contract, passed on.
        Head::Answer(answer) => unsafe { calls::deliver_answer(state, token, payload, answer) },
        // SAFETY: the caller's contract, passed on.
        Head::Call(call) => unsafe { calls::serve_call(state, token, payload, call) },
        Head::Trace(_) | Head::Other => false,
    };
    if handled {
        return;
    }
    // SAFETY: the handler and the decoded arguments go above `top`, which is
    // restored on every path (decode_args pushes nothing when it fails).
    unsafe {
        let top = ffi::lua_gettop(state);
        match push_handler(state, token, &[c"on_call", c"on_recv"]) {
            Lookup::Found => {}
            Lookup::NoObject => {
                // Only open streams have input, and an open stream's table is registered.
                log::warn(&format!("stream {token} has input but no table: message dropped"));
                return;
            }
            Lookup::NoHandler => {
                let dropped = with_host(|host| {
                    host.net.count(token, |stats| stats.unhandled += 1);
                    host.net.manager_stats(token).map_or(0, |stats| stats.unhandled)
                });
                if dropped.is_power_of_two() {
                    log::warn(&format!(
                        "stream {token} has no on_call handler: message dropped ({dropped} dropped so far on its manager)"
                    ));
                }
                return;
            }
        }
        // A traced message: its id is current while the handler runs, which gets the rest.
        let traced = match head {
            Head::Trace(trace) => enter_trace(state, top + 1, trace.trace).map(|key| (trace, key)),
            _ => None,
        };
        let decoded = match &traced {
            Some((head, _)) => decode_values(state, &payload[head.values_at..], head.values),
            None => decode_args(state, payload),
        };
        match decoded {
            Ok(count) => {
                pcall_logged(state, count, &|| format!("on_call of stream {token}"));
            }
            Err(error) => {
                let peer = peer_name(token);
                if from_peer {
                    log::warn(&format!("closing stream {token} ({peer}): bad-package ({error})"));
                    with_host(|host| {
                        host.net.count(token, |stats| stats.bad_packages += 1);
                        host.net.fail(token, NetError::BadPackage);
                    });
                } else {
                    log::warn(&format!(
                        "dropped a forwarded message on stream {token} ({peer}): bad-package ({error})"
                    ));
                    with_host(|host| host.net.count(token, |stats| stats.bad_deliveries += 1));
                }
            }
        }
        if let Some((_, key)) = traced {
            leave_trace(state, top + 1, key);
        }
        ffi::lua_settop(state, top);
    }
}

/// Where the running thread's trace id is kept in the trace table: key 1
/// for the main thread, else the coroutine itself (runtime_lua/trace.lua).
#[derive(Clone, Copy)]
enum TraceKey {
    Main,
    Coroutine,
}

/// Makes `trace` the current trace id of the running thread for a call of
/// the handler at `handler_at` (the top): puts the trace table and the
/// previous id below the handler, for [`leave_trace`]. None (nothing
/// pushed) when the runtime has no trace table.
///
/// # Safety
/// The [stack contract](super::raw#safety), with the handler on top at `handler_at`.
unsafe fn enter_trace(state: *mut lua_State, handler_at: c_int, trace: &[u8]) -> Option<TraceKey> {
    let traces = refs().traces;
    if traces == ffi::LUA_REFNIL {
        return None;
    }
    // SAFETY: the contract; the table and the previous id stay pushed, moved
    // below the handler; the key and the id are consumed by the raw set.
    unsafe {
        push_ref(state, traces);
        let key = if ffi::lua_pushthread(state) == 1 {
            ffi::lua_pop(state, 1);
            ffi::lua_rawgeti(state, -1, 1);
            ffi::lua_pushlstring(state, trace.as_ptr().cast(), trace.len());
            ffi::lua_rawseti(state, -3, 1);
            TraceKey::Main
        } else {
            ffi::lua_pushvalue(state, -1);
            ffi::lua_rawget(state, -3); // [traces, thread, previous]
            ffi::lua_rotate(state, -2, 1); // [traces, previous, thread]
            ffi::lua_pushlstring(state, trace.as_ptr().cast(), trace.len());
            ffi::lua_rawset(state, -4);
            TraceKey::Coroutine
        };
        ffi::lua_rotate(state, handler_at, 2); // [traces, previous, handler]
        Some(key)
    }
}

/// Puts back the trace id [`enter_trace`] left at `at + 1` (the table at `at`).
///
/// # Safety
/// The [stack contract](super::raw#safety), after `enter_trace(state, at, ...)`
/// gave `key`, and the handler's call.
unsafe fn leave_trace(state: *mut lua_State, at: c_int, key: TraceKey) {
    // SAFETY: the contract; what is pushed is consumed by the raw set.
    unsafe {
        match key {
            TraceKey::Main => {
                ffi::lua_pushvalue(state, at + 1);
                ffi::lua_rawseti(state, at, 1);
            }
            TraceKey::Coroutine => {
                ffi::lua_pushthread(state);
                ffi::lua_pushvalue(state, at + 1);
                ffi::lua_rawset(state, at);
            }
        }
    }
}

/// Reports an undeliverable forward: `on_call_failed(session, err, mode, target)` for
/// a tracked call when the stream has that handler, else
/// `on_forward_error(err, mode, target, msg, ...)`.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn dispatch_forward_error(
    state: *mut lua_State,
    token: Token,
    failure: ForwardFailure,
    route: &Route,
    payload: &[u8],
) {
    // SAFETY: the contract, passed on; four arguments are pushed for `on_call_failed`.
    let tracked = route.session != 0
        && (unsafe { calls::fail_routed_call(state, route.session, failure) }
            || unsafe {
                call_handler(state, token, c"on_call_failed", &|| {
                    ffi::lua_pushinteger(state, i64::from(route.session));
                    push_str(state, failure.name());
                    push_str(state, route.mode.name());
                    ffi::lua_pushinteger(state, i64::from(route.target));
                    4
                })
            });
    if tracked {
        return;
    }
    // SAFETY: the contract; the handler and its arguments go above `top`,
    // which is restored, and decode_args checks the stack for its values.
    unsafe {
        let top = ffi::lua_gettop(state);
        if push_handler(state, token, &[c"on_forward_error"]) != Lookup::Found {
            let count = with_host(|host| {
                host.unhandled_forward_errors += 1;
                host.unhandled_forward_errors
            });
            if count.is_power_of_two() {
                log::warn(&format!(
                    "forward failed on stream {token}: {} (mode {}, target {}); no on_forward_error handler \
                     ({count} such failures so far)",
                    failure.name(),
                    route.mode.name(),
                    describe_target(route)
                ));
            }
            return;
        }
        push_str(state, failure.name());
        push_str(state, route.mode.name());
        ffi::lua_pushinteger(state, i64::from(route.target));
        let count = match decode_args(state, payload) {
            Ok(count) => count,
            Err(error) if !payload.is_empty() => {
                log::warn(&format!(
                    "the message of a failed forward on stream {token} is undecodable ({error})"
                ));
                0
            }
            Err(_) => 0,
        };
        pcall_logged(state, 3 + count, &|| format!("on_forward_error of stream {token}"));
        ffi::lua_settop(state, top);
    }
}

fn describe_target(route: &Route) -> String {
    match route.mode {
        Mode::Target => crate::route::service_id::name(route.target),
        _ => format!("group {}", route.target),
    }
}

/// Pushes an error string and, when there is one, its detail; returns how many.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn push_error_detail(state: *mut lua_State, error: NetError, detail: Option<&str>) -> c_int {
    // SAFETY: the contract leaves room for two values.
    unsafe {
        push_str(state, error.as_str());
        match detail {
            Some(detail) => {
                push_str(state, detail);
                2
            }
            None => 1,
        }
    }
}

/// Turns queued notices into callbacks.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn dispatch_notices(state: *mut lua_State) {
    while let Some(notice) = with_host(|host| host.net.pop_notice()) {
        // SAFETY: the contract is the caller's; each callee leaves the stack as it found it.
        unsafe {
            match notice {
                Notice::Accepted { listener, stream } => accept(state, listener, stream),
                Notice::Connected(token) => {
                    call_handler(state, token, c"on_connect", &|| {
                        push_str(state, "ok");
                        1
                    });
                    call_handler(state, token, c"on_connected", &|| 0);
                }
                Notice::ConnectFailed(token, error, detail) => {
                    let push_error = || push_error_detail(state, error, detail.as_deref());
                    stream_closed(state, token, error);
                    if !call_handler(state, token, c"on_connect", &push_error)
                        && !call_handler(state, token, c"on_error", &push_error)
                    {
                        log::warn(&format!(
                            "connect of stream {token} failed: {error}{} (no on_connect handler)",
                            detail.map(|d| format!(" ({d})")).unwrap_or_default()
                        ));
                    }
                    forget_object(state, token);
                }
                Notice::Closed(token, error, detail) => {
                    stream_closed(state, token, error);
                    if !call_handler(state, token, c"on_error", &|| {
                        push_error_detail(state, error, detail.as_deref())
                    }) {
                        log::info(&format!(
                            "stream {token} closed: {error}{} (no on_error handler)",
                            detail.map(|d| format!(" ({d})")).unwrap_or_default()
                        ));
                    }
                    forget_object(state, token);
                }
            }
        }
    }
}

/// Hands a new stream to its listener's `on_accept`, or closes it when there is none.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn accept(state: *mut lua_State, listener: Token, stream: Token) {
    // SAFETY: the handler and the stream's table go above `top`, which is restored.
    unsafe {
        let top = ffi::lua_gettop(state);
        if push_handler(state, listener, &[c"on_accept"]) != Lookup::Found {
            log::warn(&format!(
                "listener {listener} has no on_accept handler: closing the new connection"
            ));
            with_host(|host| host.net.close(stream));
            return;
        }
        let Some((ip, port, framing)) =
            with_host(|host| host.net.stream(stream).map(|s| (s.ip.clone(), s.port, s.framing)))
        else {
            ffi::lua_settop(state, top);
            return;
        };
        push_stream(state, stream, &ip, port, framing);
        pcall_logged(state, 1, &|| format!("on_accept of listener {listener}"));
        ffi::lua_settop(state, top);
    }
}

#[cfg(test)]
mod tests {
    use mlua::Table;

    use super::*;
    use crate::lua::test_support::{Bindings, top};

    /// Registers `object` as the table of socket `token`, as `objects` does.
    fn register(bindings: &Bindings, token: Token, object: &Table) {
        // SAFETY: a protected call with the table as argument 1.
        unsafe {
            bindings.raw(object, |state| {
                push_ref(state, refs().objects);
                ffi::lua_pushvalue(state, 1);
                ffi::lua_rawseti(state, -2, token as i64);
                ffi::lua_pop(state, 1);
            })
        };
    }

    /// What `push_handler(token, names)` finds, and the name of the function it pushed.
    fn lookup(bindings: &Bindings, token: Token, names: &[&CStr]) -> (Lookup, Option<String>) {
        let mut found = (Lookup::NoObject, None);
        // SAFETY: a protected call; what is pushed is checked and popped.
        unsafe {
            bindings.raw((), |state| {
                let before = top(state);
                let lookup = push_handler(state, token, names);
                let pushed = top(state) - before;
                assert_eq!(
                    pushed,
                    c_int::from(lookup == Lookup::Found),
                    "{lookup:?} pushes only a handler"
                );
                let name = (lookup == Lookup::Found).then(|| {
                    ffi::lua_call(state, 0, 1);
                    super::super::raw::lossy(state, -1)
                });
                ffi::lua_settop(state, before);
                found = (lookup, name);
            })
        };
        found
    }

    #[test]
    fn one_lookup_finds_the_first_handler_by_raw_field() {
        let bindings = Bindings::new();
        let object: Table = bindings.eval(
            "return setmetatable({ on_recv = function() return 'on_recv' end, on_data = 'not a function' },
                                 { __index = function() return function() return 'meta' end end })",
        );
        register(&bindings, 7, &object);
        assert_eq!(
            lookup(&bindings, 7, &[c"on_call", c"on_recv"]),
            (Lookup::Found, Some("on_recv".into()))
        );
        object
            .raw_set(
                "on_call",
                bindings.eval::<mlua::Function>("return function() return 'on_call' end"),
            )
            .unwrap();
        assert_eq!(
            lookup(&bindings, 7, &[c"on_call", c"on_recv"]).1.as_deref(),
            Some("on_call")
        );
        assert_eq!(
            lookup(&bindings, 7, &[c"on_data"]).0,
            Lookup::NoHandler,
            "a string is not a handler"
        );
        assert_eq!(
            lookup(&bindings, 7, &[c"on_reply"]).0,
            Lookup::NoHandler,
            "__index is not asked"
        );
        assert_eq!(lookup(&bindings, 8, &[c"on_call"]).0, Lookup::NoObject);
    }

    #[test]
    fn call_handler_passes_its_arguments_and_survives_errors() {
        let bindings = Bindings::new();
        let object: Table = bindings.eval(
            "got = {}
             return { on_error = function(err, detail) got.err, got.detail = err, detail end,
                      on_connect = function() error('boom') end }",
        );
        register(&bindings, 3, &object);
        let mut called = (false, false, false);
        // SAFETY: a protected call; the handlers' arguments are pushed as promised.
        unsafe {
            bindings.raw((), |state| {
                let push = || push_error_detail(state, NetError::Closed, Some("by peer"));
                called.0 = call_handler(state, 3, c"on_error", &push);
                called.1 = call_handler(state, 3, c"on_connect", &|| 0);
                called.2 = call_handler(state, 3, c"on_data", &|| 0);
                assert_eq!(top(state), 0);
            })
        };
        assert_eq!(called, (true, true, false), "a handler that raised was still called");
        let got: Table = bindings.eval("return got");
        assert_eq!(got.get::<String>("err").unwrap(), "closed");
        assert_eq!(got.get::<String>("detail").unwrap(), "by peer");
    }

    #[test]
    fn stream_closed_calls_the_runtime_hook_when_there_is_one() {
        let bindings = Bindings::new();
        // SAFETY: a protected call; stream_closed leaves the stack as it found it.
        unsafe { bindings.raw((), |state| stream_closed(state, 4, NetError::Closed)) };
        bindings
            .eval::<()>("luna._set_hooks{ on_stream_closed = function(token, err) closed = token .. ' ' .. err end }");
        // SAFETY: as above.
        unsafe { bindings.raw((), |state| stream_closed(state, 4, NetError::Timeout)) };
        assert_eq!(bindings.eval::<String>("return closed"), "4 timeout");
    }

    /// A traced message ("@trace", "t-1", "hello", 42) for stream 7.
    fn traced_payload() -> Vec<u8> {
        let mut out = Vec::new();
        crate::rpc::wire::write_trace_head(&mut out, b"t-1", 2);
        rmpv::encode::write_value(&mut out, &"hello".into()).unwrap();
        rmpv::encode::write_value(&mut out, &42.into()).unwrap();
        out
    }

    /// Dispatches `traced_payload()` to stream 7 on the running thread.
    ///
    /// # Safety
    /// A C function: Lua calls it (the [stack contract](super::super::raw#safety)).
    unsafe extern "C-unwind" fn dispatch_traced(state: *mut lua_State) -> c_int {
        // SAFETY: Lua called it: the stack contract; the dispatch leaves the stack as it found it.
        unsafe { dispatch_message(state, 7, &traced_payload(), true) };
        0
    }

    #[test]
    fn a_traced_message_runs_its_handler_under_its_id_then_the_previous_one_is_back() {
        let bindings = Bindings::new();
        let object: Table = bindings.eval(
            "traces = {}
             luna._set_hooks({ traces = traces })
             seen = {}
             return { on_call = function(msg, n)
                 local co, main = coroutine.running()
                 seen[#seen + 1] = table.concat({ tostring(traces[main and 1 or co]), msg, n }, ' ')
             end }",
        );
        register(&bindings, 7, &object);
        // SAFETY: a protected call; the C function is registered as a global.
        unsafe {
            bindings.raw((), |state| {
                ffi::lua_pushcfunction(state, dispatch_traced);
                ffi::lua_setglobal(state, c"dispatch_traced".as_ptr());
            })
        };
        let seen: Vec<String> = bindings.eval(
            "traces[1] = 'outer'
             dispatch_traced()
             local main_after = traces[1]
             local co = coroutine.create(function()
                 traces[coroutine.running()] = 'inner'
                 dispatch_traced()
                 return traces[coroutine.running()]
             end)
             local _, co_after = coroutine.resume(co)
             return { seen[1], seen[2], main_after, co_after }",
        );
        assert_eq!(seen, ["t-1 hello 42", "t-1 hello 42", "outer", "inner"]);
    }
}
