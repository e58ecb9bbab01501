//! RPC calls of this process, made and answered in the core: `stream._call`
//! and `stream._rcall` send a call and park the calling coroutine; an
//! answer, a timeout, a lost stream or a router's report resumes it with
//! the results (or nil, err) straight onto its stack. `luna.rpc` wraps these
//! (runtime_lua/rpc.lua); broadcast calls stay in Lua, on the sessions the
//! core leaves to it (`rpc::LUA_SESSIONS_START` and up).

use std::ffi::{CString, c_int};
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_State};

use super::dispatch::{Lookup, push_handler};
use super::host::{refs, with_host};
use super::raw::{Args, lossy, push_fail, push_fail_detail, push_ref};
use super::sockets::{Output, encode_then_send, push_send_result, token, tracked_route};
use crate::codec::{decode_values, encode_values};
use crate::log;
use crate::net::frame::{ForwardFailure, Header, Kind, Mode, Route};
use crate::net::{NetError, SendError, Token};
use crate::rpc::wire::{AnswerHead, CallHead, write_answer_head, write_call_head};
use crate::rpc::{Pending, PendingCalls};

/// Where a call goes: on the stream itself, or through the router at its end.
enum Via {
    Direct,
    Router(Route),
}

/// `stream._call(timeout_ms, trace, method, ...)`: calls `method` on the far
/// end of the stream and waits (the coroutine yields); returns the results,
/// or nil and why.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn stream_call(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; the check raises before anything is owned.
    unsafe { require_coroutine(state, c"rpc.call must run inside a coroutine (start one with luna.go)") };
    // SAFETY: Lua called this stream method; `args` lives until `send_call` returns.
    let sent = unsafe { send_call(&Args::new(state), Via::Direct, 3, 2) };
    match sent {
        // SAFETY: a C function's return expression; nothing owned is live.
        Sent::Waiting => unsafe { ffi::lua_yield(state, 0) },
        Sent::Failed(count) => count,
    }
}

/// `stream._rcall(timeout_ms, trace, reply_to, mode, target, key, method, ...)`:
/// a call through the router at the far end, which tracks it (and reports
/// no-route or a lost callee at once); waits like `_call`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn stream_routed_call(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; the check raises before anything is owned.
    unsafe {
        require_coroutine(
            state,
            c"a routed call must run inside a coroutine (start one with luna.go)",
        )
    };
    let sent = {
        // SAFETY: Lua called this stream method; `args` lives until this block ends.
        let args = unsafe { Args::new(state) };
        match tracked_route(&args, 4, 0) {
            // In the node's call_* the method is argument #2 (#3 after a hash key).
            Ok(route) => {
                let shown_method = if route.mode == Mode::Hash { 3 } else { 2 };
                // SAFETY: a running stream method with its arguments in `args`.
                unsafe { send_call(&args, Via::Router(route), 7, shown_method) }
            }
            // SAFETY: the stack contract of a C function.
            Err(why) => Sent::Failed(unsafe { push_fail_detail(state, NetError::InvalidParam, &why) }),
        }
    };
    match sent {
        // SAFETY: a C function's return expression; nothing owned is live.
        Sent::Waiting => unsafe { ffi::lua_yield(state, 0) },
        Sent::Failed(count) => count,
    }
}

/// `stream._reply(session, reply_to, self_id, ok, ...)`: answers a call:
/// ("@ret", session, self_id, ok, ...) on the stream when `reply_to` is 0,
/// else through the router to `reply_to`. Bytes queued, or nil and why.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn stream_reply(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let (args, stream) = unsafe { (Args::new(state), token(state)) };
    let number = |at| args.integer(at).and_then(|n| u32::try_from(n).ok());
    let (Some(session), Some(reply_to), Some(self_id)) = (number(1), number(2), number(3)) else {
        let why = "session, reply_to and self_id (arguments #1 to #3) must be u32 integers";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    let ok = args.boolean(4);
    let route = (reply_to != 0).then(|| Route {
        is_reply: true,
        ..Route::new(Mode::Target, reply_to, 0, session)
    });
    let (kind, header) = match &route {
        Some(route) => (Kind::Forward, Header::Route(route)),
        None => (Kind::Call, Header::None),
    };
    let last = args.count();
    let result = encode_then_send(stream, Output::Frame(kind, header), |out| {
        write_answer_head(out, session, self_id, ok, (last - 4).max(0) as u32);
        // SAFETY: the stack contract; `5..=last` are argument slots (none when
        // last < 5), read while the host is not borrowed.
        unsafe { encode_values(state, 5, last, 5, out) }
    });
    // SAFETY: the stack contract of a C function.
    unsafe { push_send_result(state, result) }
}

/// What `send_call` did.
enum Sent {
    /// The call is out and registered: the C function yields.
    Waiting,
    /// It could not be sent: this many values (nil, err...) are pushed.
    Failed(c_int),
}

/// Raises `message` unless the running code can yield (a coroutine).
///
/// # Safety
/// The [stack contract](super::raw#safety), from a C function owning nothing.
unsafe fn require_coroutine(state: *mut lua_State, message: &'static std::ffi::CStr) {
    // SAFETY: the contract; luaL_where pushes one string, concatenated with the message.
    unsafe {
        if ffi::lua_isyieldable(state) == 0 {
            ffi::luaL_where(state, 2);
            ffi::lua_pushstring(state, message.as_ptr());
            ffi::lua_concat(state, 2);
            ffi::lua_error(state);
        }
    }
}

/// Sends the call whose method is argument `method_at` (the arguments
/// before it: timeout_ms, trace, and for routed calls reply_to and the
/// route) and registers it. `shown_method`: the method's argument number in
/// the call the script wrote (rpc.call, node.call_*), which errors count from.
///
/// # Safety
/// The stack contract of a running stream method (`token`), with `args` its arguments.
unsafe fn send_call(args: &Args, via: Via, method_at: c_int, shown_method: c_int) -> Sent {
    let state = args.state();
    // SAFETY: a running stream method (the caller's promise).
    let stream = unsafe { token(state) };
    let Some(timeout_ms) = args.number(1) else {
        let why = "timeout_ms (argument #1) must be a number";
        // SAFETY: the stack contract of a C function.
        return Sent::Failed(unsafe { push_fail_detail(state, NetError::InvalidParam, why) });
    };
    let trace = args.str(2);
    let reply_to = match via {
        Via::Direct => Some(0),
        Via::Router(_) => args.integer(3).and_then(|id| u32::try_from(id).ok()),
    };
    let Some(reply_to) = reply_to else {
        let why = "reply_to (argument #3) must be a service id";
        // SAFETY: the stack contract of a C function.
        return Sent::Failed(unsafe { push_fail_detail(state, NetError::InvalidParam, why) });
    };
    let last = args.count();
    if last < method_at {
        let why = format!("a method (argument #{shown_method}) is required");
        // SAFETY: the stack contract of a C function.
        return Sent::Failed(unsafe { push_fail_detail(state, NetError::InvalidParam, &why) });
    }
    let session = with_host(|host| host.calls.next_free_session());
    let (kind, route) = match via {
        Via::Direct => (Kind::Call, None),
        Via::Router(route) => (Kind::Forward, Some(Route { session, ..route })),
    };
    let header = route.as_ref().map_or(Header::None, Header::Route);
    let values = (last - method_at + 1) as u32;
    let result = encode_then_send(stream, Output::Frame(kind, header), |out| {
        write_call_head(out, session, reply_to, trace, values);
        // SAFETY: the stack contract; `method_at..=last` are argument slots,
        // read while the host is not borrowed.
        unsafe { encode_values(state, method_at, last, shown_method, out) }
    });
    match result {
        Ok(_) => {}
        Err(SendError::Net(NetError::Closed)) => {
            // SAFETY: the stack contract of a C function.
            return Sent::Failed(unsafe { push_fail(state, "connection-lost") });
        }
        Err(SendError::Encode(message)) => {
            // SAFETY: the stack contract of a C function.
            return Sent::Failed(unsafe { push_fail(state, message) });
        }
        // SAFETY: the stack contract of a C function.
        Err(error) => return Sent::Failed(unsafe { push_send_result(state, Err(error)) }),
    }
    // SAFETY: the stack contract; the thread goes into the registry, which
    // keeps it alive until its call is over.
    let waiter = unsafe {
        ffi::lua_pushthread(state);
        ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX)
    };
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_ms.max(0.0) / 1000.0);
    let pending = Pending {
        waiter,
        stream,
        tracked: route.is_some(),
        deadline,
    };
    with_host(|host| {
        host.calls.insert(session, pending);
        host.calls.counters.calls += 1;
    });
    Sent::Waiting
}

/// Resumes the coroutine `waiter` (a registry reference, released here)
/// with the `count` values on top of `state`, which are consumed.
///
/// # Safety
/// The [stack contract](super::raw#safety), with `count` values on top.
unsafe fn resume_waiter(state: *mut lua_State, waiter: c_int, count: c_int) {
    // SAFETY: the contract; the thread is pushed below the values and kept
    // there (anchoring it) until the resume is over; lua_xmove moves the
    // values onto the coroutine's stack, which is checked for room first.
    unsafe {
        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(waiter));
        ffi::luaL_unref(state, ffi::LUA_REGISTRYINDEX, waiter);
        let coroutine = ffi::lua_tothread(state, -1);
        ffi::lua_insert(state, -(count + 1));
        if coroutine.is_null() || ffi::lua_status(coroutine) != ffi::LUA_YIELD {
            log::error("rpc: the coroutine waiting for a call is not suspended: its results were dropped");
            ffi::lua_pop(state, count + 1);
            return;
        }
        let moved = if ffi::lua_checkstack(coroutine, count + 1) == 0 {
            ffi::lua_pop(state, count);
            push_fail(state, "the call's results do not fit a Lua stack")
        } else {
            count
        };
        ffi::lua_xmove(state, coroutine, moved);
        resume_on_top(state, moved);
        ffi::lua_pop(state, 1);
    }
}

/// Resumes the coroutine on top of `state` with the `count` values on top
/// of its own stack. When it yields `rpc_parked` (a worker whose job is
/// done), it goes back to the pool of workers; an error it ends with is
/// logged with its traceback. The thread stays on `state`.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a suspended (or new)
/// coroutine on top holding `count` values for the resume.
unsafe fn resume_on_top(state: *mut lua_State, count: c_int) {
    // SAFETY: the contract; what the coroutine yields or returns is popped
    // from its stack, and the error value read before it is cleared.
    unsafe {
        let coroutine = ffi::lua_tothread(state, -1);
        let mut results = 0;
        let status = ffi::lua_resume(coroutine, state, count, &mut results);
        if status == ffi::LUA_YIELD || status == ffi::LUA_OK {
            let parked = status == ffi::LUA_YIELD && results == 1 && yielded_parked(state, coroutine);
            ffi::lua_pop(coroutine, results);
            if parked && with_host(|host| host.workers.len()) < MAX_IDLE_WORKERS {
                ffi::lua_pushvalue(state, -1);
                let worker = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                with_host(|host| host.workers.push(worker));
            }
            return;
        }
        let message = CString::new(lossy(coroutine, -1).replace('\0', "\\0")).unwrap_or_default();
        ffi::luaL_traceback(state, coroutine, message.as_ptr(), 0);
        let traceback = lossy(state, -1);
        drop(message);
        log::error(&format!("error in coroutine: {traceback}"));
        ffi::lua_pop(state, 1);
        ffi::lua_settop(coroutine, 0);
    }
}

/// Idle worker coroutines kept for the next calls; more are left to the collector.
const MAX_IDLE_WORKERS: usize = 256;

/// True when the one value `coroutine` yielded is the `rpc_parked` marker.
///
/// # Safety
/// The [stack contract](super::raw#safety); `coroutine` has yielded one value.
unsafe fn yielded_parked(state: *mut lua_State, coroutine: *mut lua_State) -> bool {
    let parked = refs().rpc_parked;
    // SAFETY: the contract; the marker and a copy of the yielded value are
    // pushed on `state` and popped again.
    unsafe {
        if parked == ffi::LUA_REFNIL || ffi::lua_checkstack(state, 2) == 0 {
            return false;
        }
        push_ref(state, parked);
        ffi::lua_pushvalue(coroutine, -1);
        ffi::lua_xmove(coroutine, state, 1);
        let same = ffi::lua_rawequal(state, -1, -2) != 0;
        ffi::lua_pop(state, 2);
        same
    }
}

/// Runs a call ("@call", session, reply_to, method, ...; `call` is its
/// head) of a stream whose table has `_on_rpc` (set by `rpc.serve` and
/// `luna.cluster`): calls `_on_rpc(session, reply_to, method, ...)` in a
/// worker coroutine of the pool, with no Lua dispatch in between. False
/// when the stream has no `_on_rpc` (its `on_call` gets the message).
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn serve_call(state: *mut lua_State, token: Token, payload: &[u8], call: CallHead) -> bool {
    let worker_body = refs().rpc_worker;
    if worker_body == ffi::LUA_REFNIL {
        return false;
    }
    // SAFETY: the contract; the handler, the worker and the decoded values
    // go above `top`, which every path restores; the worker's stack gets
    // its body (new workers) and the arguments, checked for room first.
    unsafe {
        let top = ffi::lua_gettop(state);
        if push_handler(state, token, &[c"_on_rpc"]) != Lookup::Found {
            return false;
        }
        match with_host(|host| host.workers.pop()) {
            Some(worker) => {
                ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, ffi::lua_Integer::from(worker));
                ffi::luaL_unref(state, ffi::LUA_REGISTRYINDEX, worker);
            }
            None => {
                let worker = ffi::lua_newthread(state);
                push_ref(state, worker_body);
                ffi::lua_xmove(state, worker, 1);
            }
        }
        let worker = ffi::lua_tothread(state, -1);
        // [handler, worker] -> [worker, handler, session, reply_to, method, ...]
        ffi::lua_insert(state, -2);
        ffi::lua_pushinteger(state, ffi::lua_Integer::from(call.session));
        ffi::lua_pushinteger(state, ffi::lua_Integer::from(call.reply_to));
        let Ok(values) = decode_values(state, &payload[call.values_at..], call.values) else {
            ffi::lua_settop(state, top);
            return false;
        };
        let count = values + 3;
        if ffi::lua_checkstack(worker, count + 1) == 0 {
            ffi::lua_settop(state, top);
            return false;
        }
        ffi::lua_xmove(state, worker, count);
        resume_on_top(state, count);
        ffi::lua_settop(state, top);
    }
    true
}

/// Resumes `waiter` with nil and `error`.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn resume_failed(state: *mut lua_State, waiter: c_int, error: &str) {
    // SAFETY: the contract; the two values are consumed by resume_waiter.
    unsafe {
        push_fail(state, error);
        resume_waiter(state, waiter, 2);
    }
}

/// Hands an answer ("@ret", session, from, ok, ...; `answer` is its head)
/// to the coroutine of one of the core's calls. False when the session is
/// the Lua layer's (the script's handler gets it); a late answer is
/// counted and dropped.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn deliver_answer(state: *mut lua_State, token: Token, payload: &[u8], answer: AnswerHead) -> bool {
    if !PendingCalls::owns(answer.session) {
        return false;
    }
    let session = answer.session;
    let Some(pending) = with_host(|host| host.calls.take(session)) else {
        let late = with_host(|host| {
            host.calls.counters.late_replies += 1;
            host.calls.counters.late_replies
        });
        log::debug(&format!(
            "rpc: dropped a late or unknown answer for session {session} on stream {token} ({late} so far)"
        ));
        return true;
    };
    // SAFETY: the contract; the decoded values go above `top`, which every
    // path restores (resume_waiter consumes what it is given).
    unsafe {
        let top = ffi::lua_gettop(state);
        let Ok(count) = decode_values(state, &payload[answer.results_at..], answer.results) else {
            // Malformed: the caller's usual path reports it; the call waits on.
            ffi::lua_settop(state, top);
            with_host(|host| host.calls.insert(session, pending));
            return false;
        };
        let ok = answer.ok;
        let results = if ok {
            count
        } else {
            // ("@ret", session, from, false, message): nil, "remote-error: message".
            if count == 0 {
                ffi::lua_pushnil(state);
            }
            ffi::luaL_tolstring(state, top + 1, std::ptr::null_mut());
            let message = format!("remote-error: {}", lossy(state, -1));
            ffi::lua_settop(state, top);
            push_fail(state, &message)
        };
        with_host(|host| {
            let counters = &mut host.calls.counters;
            counters.completed += 1;
            counters.remote_errors += u64::from(!ok);
        });
        resume_waiter(state, pending.waiter, results);
        ffi::lua_settop(state, top);
    }
    true
}

/// A router could not deliver the tracked call `session` (no-route,
/// connection-lost...): its coroutine gets nil and the failure's name. A
/// report for a call that is already over (it timed out) is counted as a
/// late reply. False when the session is the Lua layer's.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn fail_routed_call(state: *mut lua_State, session: u32, failure: ForwardFailure) -> bool {
    if !PendingCalls::owns(session) {
        return false;
    }
    let taken = with_host(|host| {
        let pending = host.calls.take(session);
        let counters = &mut host.calls.counters;
        if pending.is_none() {
            counters.late_replies += 1;
            return None;
        }
        match failure {
            ForwardFailure::ConnectionLost => counters.connection_lost += 1,
            ForwardFailure::NoRoute => counters.no_route += 1,
            ForwardFailure::SendBufferFull | ForwardFailure::TooManyCalls => {}
        }
        pending
    });
    match taken {
        // SAFETY: the caller's contract, passed on.
        Some(pending) => unsafe { resume_failed(state, pending.waiter, failure.name()) },
        None => log::debug(&format!(
            "rpc: dropped a late {} report for session {session}",
            failure.name()
        )),
    }
    true
}

/// Stream `token` closed: its calls fail now with connection-lost rather than at their timeout.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn fail_stream_calls(state: *mut lua_State, token: Token) {
    let lost = with_host(|host| {
        let lost = host.calls.take_stream(token);
        host.calls.counters.connection_lost += lost.len() as u64;
        lost
    });
    for (_, pending) in lost {
        // SAFETY: the caller's contract, passed on.
        unsafe { resume_failed(state, pending.waiter, "connection-lost") };
    }
}

/// Fails the calls past their deadline with "timeout" (a router tracking
/// one is told to forget it); returns how many.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn time_out_calls(state: *mut lua_State) -> usize {
    let now = Instant::now();
    let mut count = 0;
    while let Some(pending) = with_host(|host| {
        let (session, pending) = host.calls.take_expired(now)?;
        host.calls.counters.timeouts += 1;
        if pending.tracked {
            let cancel = host.net.send_with(pending.stream, Kind::Cancel, Header::None, |out| {
                out.extend_from_slice(&session.to_be_bytes());
                Ok::<(), ()>(())
            });
            // A closed stream's router has forgotten the call already; a full
            // one keeps tracking it until the callee answers or leaves.
            if let Err(SendError::Net(error)) = cancel
                && error != NetError::Closed
            {
                log::debug(&format!("rpc: could not cancel timed-out call {session}: {error}"));
            }
        }
        Some(pending)
    }) {
        // SAFETY: the caller's contract, passed on.
        unsafe { resume_failed(state, pending.waiter, "timeout") };
        count += 1;
    }
    count
}

/// `luna._rpc_stats()`: the counters of the core's calls, and how many wait.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn rpc_stats(state: *mut lua_State) -> c_int {
    let (counters, pending) = with_host(|host| (host.calls.counters, host.calls.len()));
    let fields = [
        (c"calls", counters.calls),
        (c"completed", counters.completed),
        (c"timeouts", counters.timeouts),
        (c"late_replies", counters.late_replies),
        (c"connection_lost", counters.connection_lost),
        (c"no_route", counters.no_route),
        (c"remote_errors", counters.remote_errors),
        (c"pending", pending as u64),
    ];
    // SAFETY: the stack contract of a C function; the table and one value at a time.
    unsafe {
        ffi::lua_createtable(state, 0, fields.len() as c_int);
        for (name, value) in fields {
            ffi::lua_pushinteger(state, value as i64);
            ffi::lua_setfield(state, -2, name.as_ptr());
        }
    }
    1
}
