//! Scripts' side of publish/subscribe and hash modes: `mgr.subscribe`,
//! `mgr.unsubscribe`, `mgr.set_hash_mode`, the pub/sub caps, and
//! `stream.publish` (the router's core fans published payloads out).

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::host::with_host;
use super::raw::{integer_arg, push_fail, push_fail_detail, str_arg, string_arg, upvalue_integer};
use crate::net::NetError;
use crate::net::frame::{Header, Kind};
use crate::route::pubsub::MAX_TOPIC_LEN;
use crate::route::{HashMode, service_id};

const TOPIC_EXPECTED: &str = "topic (argument #1) must be a string of 1 to 255 bytes";

/// The topic argument at `index`, checked.
unsafe fn topic_arg<'a>(state: *mut lua_State, index: c_int) -> Option<&'a [u8]> {
    unsafe { string_arg(state, index) }.filter(|t| !t.is_empty() && t.len() <= MAX_TOPIC_LEN)
}

/// `mgr.subscribe(topic, token)`: the stream `token` gets every publish on
/// `topic` (its retained message first); true, or nil and
/// `too-many-subscriptions`/`too-many-topics`.
pub unsafe extern "C-unwind" fn mgr_subscribe(state: *mut lua_State) -> c_int {
    unsafe {
        let Some(topic) = topic_arg(state, 1) else {
            return push_fail_detail(state, NetError::InvalidParam, TOPIC_EXPECTED);
        };
        let Some(token) = integer_arg(state, 2) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "token (argument #2) must be a stream's token",
            );
        };
        let topic = topic.to_vec();
        match with_host(|host| host.net.subscribe(token as u64, &topic)) {
            Ok(()) => ffi::lua_pushboolean(state, 1),
            Err(error) => return push_fail(state, error.as_str()),
        }
    }
    1
}

/// `mgr.unsubscribe(topic, token)`: true if the stream was subscribed.
pub unsafe extern "C-unwind" fn mgr_unsubscribe(state: *mut lua_State) -> c_int {
    unsafe {
        let (Some(topic), Some(token)) = (topic_arg(state, 1), integer_arg(state, 2)) else {
            return push_fail_detail(state, NetError::InvalidParam, "want mgr.unsubscribe(topic, token)");
        };
        let topic = topic.to_vec();
        let was = with_host(|host| host.net.unsubscribe(token as u64, &topic));
        ffi::lua_pushboolean(state, c_int::from(was));
    }
    1
}

/// `mgr.set_hash_mode(group, "modulo" | "rendezvous")`.
pub unsafe extern "C-unwind" fn mgr_set_hash_mode(state: *mut lua_State) -> c_int {
    unsafe {
        let Some(group) = integer_arg(state, 1).filter(|&g| service_id::is_valid_group(g)) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "group (argument #1) must be an integer 1-255",
            );
        };
        let Some(mode) = str_arg(state, 2).and_then(HashMode::from_name) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "mode (argument #2) must be \"modulo\" or \"rendezvous\"",
            );
        };
        let mgr = upvalue_integer(state) as u32;
        with_host(|host| {
            host.net
                .manager(mgr)
                .map(|m| m.routes.set_hash_mode(group as u32, mode))
        });
        ffi::lua_pushboolean(state, 1);
    }
    1
}

/// Sets one pub/sub cap of the manager from argument 1.
unsafe fn set_cap(state: *mut lua_State, apply: fn(&mut crate::route::pubsub::PubSubLimits, usize)) -> c_int {
    unsafe {
        let Some(value) = integer_arg(state, 1).filter(|&n| n >= 0) else {
            return push_fail_detail(
                state,
                NetError::InvalidParam,
                "the limit (argument #1) must be an integer >= 0",
            );
        };
        let mgr = upvalue_integer(state) as u32;
        with_host(|host| {
            host.net
                .manager(mgr)
                .map(|m| apply(&mut m.topics.limits, value as usize))
        });
        ffi::lua_pushboolean(state, 1);
    }
    1
}

/// `mgr.set_max_subscriptions(n)`: topics one stream may subscribe to.
pub unsafe extern "C-unwind" fn mgr_set_max_subscriptions(state: *mut lua_State) -> c_int {
    unsafe { set_cap(state, |limits, n| limits.max_subscriptions = n) }
}

/// `mgr.set_max_topics(n)`: topics the manager keeps.
pub unsafe extern "C-unwind" fn mgr_set_max_topics(state: *mut lua_State) -> c_int {
    unsafe { set_cap(state, |limits, n| limits.max_topics = n) }
}

/// `mgr.set_max_retained_bytes(bytes)`: bytes of retained messages the manager keeps.
pub unsafe extern "C-unwind" fn mgr_set_max_retained_bytes(state: *mut lua_State) -> c_int {
    unsafe { set_cap(state, |limits, n| limits.max_retained_bytes = n) }
}

/// `stream.publish(topic, retain, msg, ...)`: a Publish frame to the router
/// at the other end; bytes queued, or nil, err.
pub unsafe extern "C-unwind" fn stream_publish(state: *mut lua_State) -> c_int {
    unsafe {
        let Some(topic) = topic_arg(state, 1) else {
            return push_fail_detail(state, NetError::InvalidParam, TOPIC_EXPECTED);
        };
        let topic = topic.to_vec();
        let retain = ffi::lua_toboolean(state, 2) != 0;
        let header = Header::Publish { retain, topic: &topic };
        super::sockets::send_args(state, Kind::Publish, header, 3)
    }
}
