//! Manager, listener and stream objects: plain tables of C closures.
//!
//! Each method closure carries its object's token (or manager index) as an
//! upvalue, so `stream.call(...)` needs no `self`, and the table takes extra
//! fields like any table. The core finds a socket's table through a registry
//! table that holds it strongly until the socket closes: a socket lives until
//! it is closed, whether or not the script still references it (the seeds
//! closed collected objects, which silently cut live links in routers that
//! kept only tokens).

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::host::refs;
use super::raw::{push_ref, push_str, set_methods, set_raw_field};
use super::sockets;
use crate::net::{Framing, Token};

/// Creates the registry table of open sockets (token -> table); returns its slot.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn create_registry_table(state: *mut lua_State) -> c_int {
    // SAFETY: the contract; the new table is popped into its registry slot.
    unsafe {
        ffi::lua_createtable(state, 0, 0);
        super::raw::make_ref(state)
    }
}

/// Makes the table on top findable by token until its socket closes.
///
/// # Safety
/// The [stack contract](super::raw#safety), with the socket's table on top.
unsafe fn register(state: *mut lua_State, token: Token) {
    // SAFETY: a table on top (the caller's promise); the registry table and a
    // copy of the object are pushed, set and popped, leaving the object on top.
    unsafe {
        push_ref(state, refs().objects);
        ffi::lua_pushvalue(state, -2);
        ffi::lua_rawseti(state, -2, token as i64);
        ffi::lua_pop(state, 1);
    }
}

/// Pushes the table of a token, or nil once its socket closed; true if found.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn push_object(state: *mut lua_State, token: Token) -> bool {
    // SAFETY: the contract; two raw gets push two values, the first removed.
    unsafe {
        push_ref(state, refs().objects);
        let kind = ffi::lua_rawgeti(state, -1, token as i64);
        ffi::lua_remove(state, -2);
        kind == ffi::LUA_TTABLE
    }
}

/// Drops the core's link to a closed socket's table (it may be collected now).
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn forget_object(state: *mut lua_State, token: Token) {
    // SAFETY: the contract; the registry table and a nil are pushed, the nil
    // set by lua_rawseti and the table popped.
    unsafe {
        push_ref(state, refs().objects);
        ffi::lua_pushnil(state);
        ffi::lua_rawseti(state, -2, token as i64);
        ffi::lua_pop(state, 1);
    }
}

/// Sets `t[name] = value` on the table on top.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a table on top.
unsafe fn set_integer(state: *mut lua_State, name: &std::ffi::CStr, value: i64) {
    // SAFETY: a table on top (the caller's promise), below the pushed value.
    unsafe {
        ffi::lua_pushinteger(state, value);
        set_raw_field(state, -2, name);
    }
}

/// Sets `t[name] = value` on the table on top.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a table on top.
unsafe fn set_string(state: *mut lua_State, name: &std::ffi::CStr, value: &str) {
    // SAFETY: a table on top (the caller's promise), below the pushed value.
    unsafe {
        push_str(state, value);
        set_raw_field(state, -2, name);
    }
}

/// Pushes a new manager table.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn push_manager(state: *mut lua_State, mgr: u32) {
    // SAFETY: the contract; the new table stays on top while it is filled.
    unsafe {
        ffi::lua_createtable(state, 0, sockets::MANAGER_METHODS.len() as c_int);
        set_methods(state, sockets::MANAGER_METHODS, i64::from(mgr));
    }
}

/// Pushes a new listener table.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn push_listener(state: *mut lua_State, token: Token, ip: &str, port: u16) {
    // SAFETY: the contract; the new table stays on top while it is filled.
    unsafe {
        ffi::lua_createtable(state, 0, 8);
        set_integer(state, c"token", token as i64);
        set_string(state, c"ip", ip);
        set_integer(state, c"port", i64::from(port));
        set_methods(state, sockets::LISTENER_METHODS, token as i64);
        register(state, token);
    }
}

/// Pushes a new stream table (luna frames or Redis commands, by `framing`).
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn push_stream(state: *mut lua_State, token: Token, ip: &str, port: u16, framing: Framing) {
    let methods = match framing {
        Framing::Luna => sockets::STREAM_METHODS,
        Framing::Resp => sockets::REDIS_METHODS,
        Framing::Raw => sockets::RAW_METHODS,
    };
    // SAFETY: the contract; the new table stays on top while it is filled.
    unsafe {
        ffi::lua_createtable(state, 0, (methods.len() + 8) as c_int);
        set_integer(state, c"token", token as i64);
        set_string(state, c"ip", ip);
        set_integer(state, c"port", i64::from(port));
        set_methods(state, methods, token as i64);
        register(state, token);
    }
}
