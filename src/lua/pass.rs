//! One pass of the event loop, and the callbacks it makes into scripts.
//!
//! A pass: wait on the poller (bounded by the next deadline) -> handle every
//! ready socket (accept, connect, read and dispatch or forward frames) ->
//! internal deadlines -> script timers -> quit signal -> settled file changes
//! -> flush every dirty stream.

use std::ffi::{CStr, c_int};
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_State};

use super::host::{self, refs, with_host};
use super::objects::{forget_object, push_object, push_stream};
use super::raw::{pcall_logged, push_ref, push_str, raise, raw_field};
use crate::codec::{decode_args, resp};
use crate::log;
use crate::net::frame::PREFIX_LEN;
use crate::net::frame::{Body, ForwardFailure, Mode, Route};
use crate::net::{EventAction, Framing, NetError, Notice, ReadResult, Readiness, Token, next_frame};

thread_local! {
    /// Forward failures reported to streams without `on_forward_error` (logged sparsely).
    static UNHANDLED_FORWARD_ERRORS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs one pass; raises a Lua error when called from inside a pass.
pub unsafe fn run_pass_or_raise(state: *mut lua_State, timeout: Option<Duration>) -> usize {
    if !host::enter_pass() {
        unsafe {
            raise(
                state,
                c"mgr.wait/luna.wait cannot run inside a callback: the loop is already running",
            )
        };
    }
    let handled = unsafe { run_pass(state, timeout) };
    host::leave_pass();
    handled
}

unsafe fn run_pass(state: *mut lua_State, timeout: Option<Duration>) -> usize {
    let ready = poll(timeout);
    let mut handled = ready.len();
    unsafe {
        for &readiness in &ready {
            let action = with_host(|host| host.net.handle_event(readiness));
            dispatch_notices(state);
            if let EventAction::Read(token) = action {
                read_and_dispatch(state, token);
                dispatch_notices(state);
            }
        }
        with_host(|host| host.ready = ready);
        for token in with_host(|host| host.net.take_again()) {
            read_and_dispatch(state, token);
            dispatch_notices(state);
        }
        with_host(|host| host.net.run_timers(Instant::now()));
        dispatch_notices(state);
        handled += run_timers(state);
        handled += deliver_quit_signal(state);
        handled += reload_changed_files(state);
        with_host(|host| {
            // Callers of tracked calls whose callee left this pass hear it in this flush.
            host.net.report_lost_calls();
            host.net.flush_dirty();
        });
        dispatch_notices(state);
    }
    handled
}

/// Waits for readiness until the earliest of `timeout` and every deadline.
fn poll(timeout: Option<Duration>) -> Vec<Readiness> {
    with_host(|host| {
        let now = Instant::now();
        let mut deadline = timeout.map(|t| now + t);
        let deadlines = [
            host.net.next_deadline(),
            host.timers.next_deadline(),
            host.watcher.as_ref().and_then(|w| w.next_deadline()),
        ];
        for due in deadlines.into_iter().flatten() {
            deadline = Some(deadline.map_or(due, |d| d.min(due)));
        }
        let busy = host.net.has_immediate_work() || host.quit.is_pending();
        let wait = if busy {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(now))
        };
        let mut ready = std::mem::take(&mut host.ready);
        ready.clear();
        if let Err(error) = host.poller.wait(wait, &mut ready) {
            log::error(&format!("poller wait failed: {error}"));
        }
        if let Some(watcher) = host.watcher.as_mut() {
            watcher.collect(Instant::now());
        }
        ready
    })
}

/// Reads a stream once and handles every complete frame.
unsafe fn read_and_dispatch(state: *mut lua_State, token: Token) {
    let ReadResult::Data(input) = with_host(|host| host.net.read(token)) else {
        return;
    };
    // A TLS link may have become secured by this read: announce it before its frames.
    unsafe { dispatch_notices(state) };
    let (package_size, framing) = with_host(|host| (host.net.package_size_of(token), host.net.framing_of(token)));
    match framing {
        Framing::Luna => {}
        Framing::Resp => {
            let consumed = unsafe { dispatch_replies(state, token, &input.data, package_size) };
            with_host(|host| host.net.give_back_input(token, input, consumed));
            return;
        }
        Framing::Raw => {
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
    let mut securing = with_host(|host| host.net.is_securing(token));
    while consumed < input.data.len() {
        match next_frame(&input.data[consumed..], package_size) {
            Ok(None) => break,
            Ok(Some((body, len))) => {
                consumed += len;
                if securing {
                    // Until the link is secured its frames are the core's handshake.
                    let raw = &input.data[consumed - len + PREFIX_LEN..consumed];
                    securing = with_host(|host| host.net.handshake_frame(token, raw));
                    if !with_host(|host| host.net.is_open(token)) {
                        break;
                    }
                    if !securing {
                        // Secured: on_accept/on_connect run before the frames that follow.
                        unsafe { dispatch_notices(state) };
                    }
                    continue;
                }
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
unsafe fn dispatch_replies(state: *mut lua_State, token: Token, data: &[u8], package_size: usize) -> usize {
    let mut consumed = 0;
    while consumed < data.len() {
        unsafe {
            let top = ffi::lua_gettop(state);
            let has_handler = push_object(state, token) && raw_field(state, -1, c"on_reply") == ffi::LUA_TFUNCTION;
            if has_handler {
                ffi::lua_remove(state, -2);
            } else {
                ffi::lua_settop(state, top);
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

unsafe fn handle_frame(state: *mut lua_State, token: Token, body: Body<'_>) {
    unsafe {
        match body {
            Body::Call(payload) => dispatch_message(state, token, payload, true),
            Body::Deliver(payload) => dispatch_message(state, token, payload, false),
            Body::Forward(route, payload) => with_host(|host| host.net.forward(token, &route, payload)),
            Body::ForwardError(failure, route, payload) => {
                dispatch_forward_error(state, token, failure, &route, payload)
            }
            Body::Cancel(session) => with_host(|host| host.net.cancel_call(token, session)),
            Body::Handshake(_) => with_host(|host| host.net.unexpected_handshake(token)),
            Body::Publish { retain, topic, payload } => {
                with_host(|host| host.net.publish(token, retain, topic, payload))
            }
            Body::Routed(session, ids) => {
                let handled = call_handler(state, token, c"on_broadcast_targets", &|| {
                    ffi::lua_pushinteger(state, i64::from(session));
                    ffi::lua_createtable(state, (ids.len() / 4) as c_int, 0);
                    for (at, id) in ids.chunks_exact(4).enumerate() {
                        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
                        ffi::lua_pushinteger(state, i64::from(id));
                        ffi::lua_rawseti(state, -2, at as i64 + 1);
                    }
                    2
                });
                if !handled {
                    log::warn(&format!(
                        "stream {token} got the receivers of broadcast call {session} but has no RPC layer \
                         (on_broadcast_targets): ignored"
                    ));
                }
            }
        }
    }
}

/// Pushes the stream's message handler (`on_call`, else `on_recv`); false if
/// the stream has none (the stream's table must be on the stack's top).
unsafe fn push_message_handler(state: *mut lua_State) -> bool {
    unsafe {
        for name in [c"on_call", c"on_recv"] {
            if raw_field(state, -1, name) == ffi::LUA_TFUNCTION {
                ffi::lua_remove(state, -2);
                return true;
            }
            ffi::lua_pop(state, 1);
        }
        ffi::lua_pop(state, 1);
        false
    }
}

/// Decodes one message onto the stack and calls the stream's handler.
/// `from_peer`: a malformed message closes the stream; a forwarded one is only dropped.
unsafe fn dispatch_message(state: *mut lua_State, token: Token, payload: &[u8], from_peer: bool) {
    unsafe {
        let top = ffi::lua_gettop(state);
        if !push_object(state, token) {
            // Only open streams have input, and an open stream's table is registered.
            ffi::lua_settop(state, top);
            log::warn(&format!("stream {token} has input but no table: message dropped"));
            return;
        }
        if !push_message_handler(state) {
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
        match decode_args(state, payload) {
            Ok(count) => {
                pcall_logged(state, count, &|| format!("on_call of stream {token}"));
            }
            Err(error) => {
                ffi::lua_settop(state, top);
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
        ffi::lua_settop(state, top);
    }
}

/// Reports an undeliverable forward: `on_call_failed(session, err, mode, target)` for
/// a tracked call when the stream has that handler, else
/// `on_forward_error(err, mode, target, msg, ...)`.
unsafe fn dispatch_forward_error(
    state: *mut lua_State,
    token: Token,
    failure: ForwardFailure,
    route: &Route,
    payload: &[u8],
) {
    unsafe {
        if route.session != 0
            && call_handler(state, token, c"on_call_failed", &|| {
                ffi::lua_pushinteger(state, i64::from(route.session));
                push_str(state, failure.name());
                push_str(state, route.mode.name());
                ffi::lua_pushinteger(state, i64::from(route.target));
                4
            })
        {
            return;
        }
        let top = ffi::lua_gettop(state);
        let handled = push_object(state, token) && raw_field(state, -1, c"on_forward_error") == ffi::LUA_TFUNCTION;
        if !handled {
            ffi::lua_settop(state, top);
            let count = UNHANDLED_FORWARD_ERRORS.with(|n| {
                n.set(n.get() + 1);
                n.get()
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
        ffi::lua_remove(state, -2);
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

/// Calls `object[name](args...)` if the object and the handler exist; true if called.
/// `push_args` pushes the arguments and returns how many.
unsafe fn call_handler(state: *mut lua_State, token: Token, name: &CStr, push_args: &dyn Fn() -> c_int) -> bool {
    unsafe {
        let top = ffi::lua_gettop(state);
        if !push_object(state, token) || raw_field(state, -1, name) != ffi::LUA_TFUNCTION {
            ffi::lua_settop(state, top);
            return false;
        }
        ffi::lua_remove(state, -2);
        let count = push_args();
        pcall_logged(state, count, &|| {
            format!("{} of socket {token}", name.to_string_lossy())
        });
        ffi::lua_settop(state, top);
        true
    }
}

/// Pushes an error string and, when there is one, its detail; returns how many.
unsafe fn push_error_detail(state: *mut lua_State, error: NetError, detail: Option<&str>) -> c_int {
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
unsafe fn dispatch_notices(state: *mut lua_State) {
    while let Some(notice) = with_host(|host| host.net.pop_notice()) {
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

/// Tells the runtime (the RPC layer) that a stream is gone: `hooks.on_stream_closed(token, err)`.
pub unsafe fn stream_closed(state: *mut lua_State, token: Token, error: NetError) {
    unsafe {
        push_ref(state, refs().on_stream_closed);
        if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
            ffi::lua_pop(state, 1);
            return;
        }
        ffi::lua_pushinteger(state, token as i64);
        push_str(state, error.as_str());
        pcall_logged(state, 2, &|| "on_stream_closed".into());
    }
}

unsafe fn accept(state: *mut lua_State, listener: Token, stream: Token) {
    unsafe {
        let top = ffi::lua_gettop(state);
        let has_handler = push_object(state, listener) && raw_field(state, -1, c"on_accept") == ffi::LUA_TFUNCTION;
        if !has_handler {
            ffi::lua_settop(state, top);
            log::warn(&format!(
                "listener {listener} has no on_accept handler: closing the new connection"
            ));
            with_host(|host| host.net.close(stream));
            return;
        }
        ffi::lua_remove(state, -2);
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

/// Runs the script timers that are due; returns how many ran.
unsafe fn run_timers(state: *mut lua_State) -> usize {
    let now = Instant::now();
    let mut due = Vec::new();
    with_host(|host| {
        while let Some(timer) = host.timers.pop_due(now) {
            due.push(timer);
        }
    });
    unsafe {
        for &(id, repeating) in &due {
            let top = ffi::lua_gettop(state);
            push_ref(state, refs().timers);
            // A timer cancelled by an earlier callback of this batch has no entry.
            if ffi::lua_rawgeti(state, -1, id as i64) != ffi::LUA_TFUNCTION {
                ffi::lua_settop(state, top);
                continue;
            }
            if !repeating {
                ffi::lua_pushnil(state);
                ffi::lua_rawseti(state, -3, id as i64);
            }
            ffi::lua_remove(state, -2);
            pcall_logged(state, 0, &|| format!("timer {id}"));
            ffi::lua_settop(state, top);
        }
    }
    due.len()
}

unsafe fn deliver_quit_signal(state: *mut lua_State) -> usize {
    let Some(signo) = with_host(|host| host.quit.take()) else {
        return 0;
    };
    unsafe {
        push_ref(state, refs().on_signal);
        if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
            ffi::lua_pop(state, 1);
            log::warn("no quit-signal hook is installed: exiting");
            log::flush(log::EXIT_FLUSH_LIMIT);
            std::process::exit(128 + signo);
        }
        ffi::lua_pushinteger(state, i64::from(signo));
        pcall_logged(state, 1, &|| "on_quit_signal".into());
    }
    1
}

unsafe fn reload_changed_files(state: *mut lua_State) -> usize {
    let changed = with_host(|host| {
        host.watcher
            .as_mut()
            .map(|w| w.take_due(Instant::now()))
            .unwrap_or_default()
    });
    unsafe {
        for path in &changed {
            push_ref(state, refs().on_file_changed);
            if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
                ffi::lua_pop(state, 1);
                continue;
            }
            push_str(state, &path.to_string_lossy());
            pcall_logged(state, 1, &|| format!("reload of {}", path.display()));
        }
    }
    changed.len()
}

/// Flushes every stream's output before exit, waiting at most `limit`.
/// Returns true when everything was written and acknowledged.
pub fn flush_before_exit(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let pending = with_host(|host| {
            host.net.mark_all_dirty();
            host.net.flush_dirty();
            host.net.has_unsent_output()
        });
        let now = Instant::now();
        if !pending || now >= deadline {
            if pending {
                log::warn("quitting with output still unsent: the flush deadline passed");
            }
            return !pending && with_host(|host| host.net.wait_until_acknowledged(deadline));
        }
        let ready = poll(Some(deadline - now));
        with_host(|host| {
            for &readiness in &ready {
                // Only writes and connects matter now; input is not dispatched.
                let _ = host.net.handle_event(readiness);
            }
            host.ready = ready;
        });
    }
}
