//! Scripts' side of publish/subscribe and hash modes: `mgr.subscribe`,
//! `mgr.unsubscribe`, `mgr.set_hash_mode`, the pub/sub caps, and
//! `stream.publish` (the router's core fans published payloads out).

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::host::with_host;
use super::raw::{Args, push_fail, push_fail_detail};
use super::sockets::{manager_index, send_args, set_limit};
use crate::net::NetError;
use crate::net::frame::{Header, Kind};
use crate::route::pubsub::MAX_TOPIC_LEN;
use crate::route::{HashMode, service_id};

const TOPIC_EXPECTED: &str = "topic (argument #1) must be a string of 1 to 255 bytes";

/// The topic argument at `index`, checked.
fn topic_arg(args: &Args, index: c_int) -> Option<&[u8]> {
    args.bytes(index).filter(|t| !t.is_empty() && t.len() <= MAX_TOPIC_LEN)
}

/// Pushes `true` and returns its count.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn push_true(state: *mut lua_State) -> c_int {
    // SAFETY: the caller's contract; one slot is pushed.
    unsafe { ffi::lua_pushboolean(state, 1) };
    1
}

/// `mgr.subscribe(topic, token)`: the stream `token` gets every publish on
/// `topic` (its retained message first); true, or nil and
/// `too-many-subscriptions`/`too-many-topics`, or `closed` when `token` is no open stream.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn mgr_subscribe(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let Some(topic) = topic_arg(&args, 1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, TOPIC_EXPECTED) };
    };
    let Some(token) = args.integer(2) else {
        let why = "token (argument #2) must be a stream's token";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    match with_host(|host| host.net.subscribe(token as u64, topic)) {
        // SAFETY: the stack contract of a C function.
        Ok(()) => unsafe { push_true(state) },
        // SAFETY: the stack contract of a C function.
        Err(error) => unsafe { push_fail(state, error.as_str()) },
    }
}

/// `mgr.unsubscribe(topic, token)`: true if the stream was subscribed.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn mgr_unsubscribe(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let (Some(topic), Some(token)) = (topic_arg(&args, 1), args.integer(2)) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, "want mgr.unsubscribe(topic, token)") };
    };
    let was = with_host(|host| host.net.unsubscribe(token as u64, topic));
    // SAFETY: the stack contract of a C function; one slot is pushed.
    unsafe { ffi::lua_pushboolean(state, c_int::from(was)) };
    1
}

/// `mgr.set_hash_mode(group, "modulo" | "rendezvous")`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn mgr_set_hash_mode(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let Some(group) = args.integer(1).filter(|&g| service_id::is_valid_group(g)) else {
        let why = "group (argument #1) must be an integer 1-255";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    let Some(mode) = args.str(2).and_then(HashMode::from_name) else {
        let why = "mode (argument #2) must be \"modulo\" or \"rendezvous\"";
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, why) };
    };
    // SAFETY: a running manager method.
    let mgr = unsafe { manager_index(state) };
    with_host(|host| {
        host.net
            .manager(mgr)
            .map(|m| m.routes.set_hash_mode(group as u32, mode))
    });
    // SAFETY: the stack contract of a C function.
    unsafe { push_true(state) }
}

/// `mgr.set_max_subscriptions(n)`: topics one stream may subscribe to.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn mgr_set_max_subscriptions(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe { set_limit(state, |m, n| m.topics.limits.max_subscriptions = n as usize) }
}

/// `mgr.set_max_topics(n)`: topics the manager keeps.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn mgr_set_max_topics(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe { set_limit(state, |m, n| m.topics.limits.max_topics = n as usize) }
}

/// `mgr.set_max_retained_bytes(bytes)`: bytes of retained messages the manager keeps.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn mgr_set_max_retained_bytes(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    unsafe { set_limit(state, |m, n| m.topics.limits.max_retained_bytes = n as usize) }
}

/// `stream.publish(topic, retain, msg, ...)`: a Publish frame to the router
/// at the other end; bytes queued, or nil, err.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn stream_publish(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this stream method; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(topic) = topic_arg(&args, 1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail_detail(state, NetError::InvalidParam, TOPIC_EXPECTED) };
    };
    let header = Header::Publish {
        retain: args.boolean(2),
        topic,
    };
    // SAFETY: a running stream method with its arguments in `args`.
    unsafe { send_args(&args, Kind::Publish, header, 3) }
}
