//! Manager, listener and stream objects: plain tables of C closures.
//!
//! Each method closure carries its object's token (or manager index) as an
//! upvalue, so `stream.call(...)` needs no `self`, and the table takes extra
//! fields like any table. The core finds a socket's table through a weak
//! registry table; a shared metatable's `__gc` closes a socket whose table
//! became garbage.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::host::{self, refs};
use super::raw::{push_ref, push_str, set_functions, set_methods, set_raw_field};
use super::sockets;
use crate::net::{Framing, Token};

/// Creates the registry tables the objects need; returns (objects, object_meta) slots.
pub unsafe fn create_registry_tables(state: *mut lua_State) -> (c_int, c_int) {
    unsafe {
        // objects: token -> table, weak values so the script decides lifetimes.
        ffi::lua_createtable(state, 0, 0);
        ffi::lua_createtable(state, 0, 1);
        push_str(state, "v");
        set_raw_field(state, -2, c"__mode");
        ffi::lua_setmetatable(state, -2);
        let objects = super::raw::make_ref(state);

        ffi::lua_createtable(state, 0, 1);
        set_functions(state, &[(c"__gc", object_gc)]);
        let object_meta = super::raw::make_ref(state);
        (objects, object_meta)
    }
}

unsafe extern "C-unwind" fn object_gc(state: *mut lua_State) -> c_int {
    host::object_collected(unsafe { ffi::lua_topointer(state, 1) });
    0
}

/// Gives the table on top its metatable and makes it findable by token.
unsafe fn register(state: *mut lua_State, token: Token) {
    unsafe {
        push_ref(state, refs().object_meta);
        ffi::lua_setmetatable(state, -2);
        push_ref(state, refs().objects);
        ffi::lua_pushvalue(state, -2);
        ffi::lua_rawseti(state, -2, token as i64);
        ffi::lua_pop(state, 1);
        host::remember_object(ffi::lua_topointer(state, -1), token);
    }
}

/// Pushes the table of a token, or nil if it was collected; true if found.
pub unsafe fn push_object(state: *mut lua_State, token: Token) -> bool {
    unsafe {
        push_ref(state, refs().objects);
        let kind = ffi::lua_rawgeti(state, -1, token as i64);
        ffi::lua_remove(state, -2);
        kind == ffi::LUA_TTABLE
    }
}

/// Drops the core's weak link to a closed socket's table.
pub unsafe fn forget_object(state: *mut lua_State, token: Token) {
    unsafe {
        push_ref(state, refs().objects);
        ffi::lua_pushnil(state);
        ffi::lua_rawseti(state, -2, token as i64);
        ffi::lua_pop(state, 1);
    }
}

unsafe fn set_integer(state: *mut lua_State, name: &std::ffi::CStr, value: i64) {
    unsafe {
        ffi::lua_pushinteger(state, value);
        set_raw_field(state, -2, name);
    }
}

unsafe fn set_string(state: *mut lua_State, name: &std::ffi::CStr, value: &str) {
    unsafe {
        push_str(state, value);
        set_raw_field(state, -2, name);
    }
}

/// Pushes a new manager table.
pub unsafe fn push_manager(state: *mut lua_State, mgr: u32) {
    unsafe {
        ffi::lua_createtable(state, 0, sockets::MANAGER_METHODS.len() as c_int);
        set_methods(state, sockets::MANAGER_METHODS, i64::from(mgr));
    }
}

/// Pushes a new listener table.
pub unsafe fn push_listener(state: *mut lua_State, token: Token, ip: &str, port: u16) {
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
pub unsafe fn push_stream(state: *mut lua_State, token: Token, ip: &str, port: u16, framing: Framing) {
    let methods = match framing {
        Framing::Luna => sockets::STREAM_METHODS,
        Framing::Resp => sockets::REDIS_METHODS,
    };
    unsafe {
        ffi::lua_createtable(state, 0, (methods.len() + 8) as c_int);
        set_integer(state, c"token", token as i64);
        set_string(state, c"ip", ip);
        set_integer(state, c"port", i64::from(port));
        set_methods(state, methods, token as i64);
        register(state, token);
    }
}
