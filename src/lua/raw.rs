//! Small helpers over the Lua C API used by the hot paths.

use std::ffi::{CStr, c_int};

use mlua::ffi::{self, lua_State};

use crate::log;

/// Pushes a Rust string.
pub unsafe fn push_str(state: *mut lua_State, text: &str) {
    unsafe { ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len()) };
}

/// Pushes `nil, message`; returns 2 for a C function to return.
pub unsafe fn push_fail(state: *mut lua_State, message: impl AsRef<str>) -> c_int {
    unsafe {
        ffi::lua_pushnil(state);
        push_str(state, message.as_ref());
    }
    2
}

/// Pushes `nil, error, detail` (what exactly was wrong); returns 3.
pub unsafe fn push_fail_detail(state: *mut lua_State, error: impl AsRef<str>, detail: &str) -> c_int {
    unsafe {
        push_fail(state, error);
        push_str(state, detail);
    }
    3
}

/// The bytes of a string argument (numbers are not converted).
pub unsafe fn string_arg<'a>(state: *mut lua_State, index: c_int) -> Option<&'a [u8]> {
    unsafe {
        if ffi::lua_type(state, index) != ffi::LUA_TSTRING {
            return None;
        }
        let mut len = 0usize;
        let ptr = ffi::lua_tolstring(state, index, &mut len);
        Some(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
    }
}

/// A string argument as UTF-8 text.
pub unsafe fn str_arg<'a>(state: *mut lua_State, index: c_int) -> Option<&'a str> {
    unsafe { string_arg(state, index).and_then(|bytes| std::str::from_utf8(bytes).ok()) }
}

/// An integer argument; floats with an integral value are accepted.
pub unsafe fn integer_arg(state: *mut lua_State, index: c_int) -> Option<i64> {
    unsafe {
        if ffi::lua_type(state, index) != ffi::LUA_TNUMBER {
            return None;
        }
        let mut is_integer = 0;
        let value = ffi::lua_tointegerx(state, index, &mut is_integer);
        (is_integer != 0).then_some(value)
    }
}

/// The integer in upvalue 1 of the running C closure.
pub unsafe fn upvalue_integer(state: *mut lua_State) -> i64 {
    unsafe { ffi::lua_tointegerx(state, ffi::lua_upvalueindex(1), std::ptr::null_mut()) }
}

/// Raises a Lua error with a static message. Nothing with a destructor may be live.
pub unsafe fn raise(state: *mut lua_State, message: &'static CStr) -> ! {
    unsafe {
        ffi::lua_pushstring(state, message.as_ptr());
        ffi::lua_error(state)
    }
}

/// Message handler for `lua_pcall`: the error with a traceback. Table errors
/// pass through unchanged (they carry their own message).
pub unsafe extern "C-unwind" fn traceback(state: *mut lua_State) -> c_int {
    unsafe {
        if ffi::lua_type(state, 1) == ffi::LUA_TTABLE {
            ffi::lua_settop(state, 1);
            return 1;
        }
        let message = ffi::lua_tostring(state, 1);
        if message.is_null() {
            let kind = CStr::from_ptr(ffi::luaL_typename(state, 1))
                .to_string_lossy()
                .into_owned();
            push_str(state, &format!("(error object is a {kind} value)"));
            ffi::luaL_traceback(state, state, ffi::lua_tostring(state, -1), 1);
        } else {
            ffi::luaL_traceback(state, state, message, 1);
        }
    }
    1
}

/// Calls the function below `nargs` arguments on the stack, logging an error
/// with its traceback and `context`. Leaves nothing on the stack. True on success.
pub unsafe fn pcall_logged(state: *mut lua_State, nargs: c_int, context: &dyn Fn() -> String) -> bool {
    unsafe {
        let handler_at = ffi::lua_gettop(state) - nargs;
        ffi::lua_pushcfunction(state, traceback);
        ffi::lua_insert(state, handler_at);
        let status = ffi::lua_pcall(state, nargs, 0, handler_at);
        let ok = status == ffi::LUA_OK;
        if !ok {
            let message = lossy(state, -1);
            log::error(&format!("error in {}: {message}", context()));
            ffi::lua_pop(state, 1);
        }
        ffi::lua_remove(state, handler_at);
        ok
    }
}

/// A value on the stack as text, for messages.
pub unsafe fn lossy(state: *mut lua_State, index: c_int) -> String {
    unsafe {
        match string_arg(state, index) {
            Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            None => CStr::from_ptr(ffi::luaL_typename(state, index))
                .to_string_lossy()
                .into_owned(),
        }
    }
}

/// Pushes `registry[slot]`.
pub unsafe fn push_ref(state: *mut lua_State, slot: c_int) {
    unsafe { ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, slot.into()) };
}

/// Pops the top value into a new registry slot.
pub unsafe fn make_ref(state: *mut lua_State) -> c_int {
    unsafe { ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX) }
}

/// Pushes `table[name]` without metamethods; returns its Lua type.
pub unsafe fn raw_field(state: *mut lua_State, table: c_int, name: &CStr) -> c_int {
    unsafe {
        let table = ffi::lua_absindex(state, table);
        ffi::lua_pushstring(state, name.as_ptr());
        ffi::lua_rawget(state, table)
    }
}

/// Sets `table[name] = value on top` without metamethods (pops the value).
pub unsafe fn set_raw_field(state: *mut lua_State, table: c_int, name: &CStr) {
    unsafe {
        let table = ffi::lua_absindex(state, table);
        ffi::lua_pushstring(state, name.as_ptr());
        ffi::lua_insert(state, -2);
        ffi::lua_rawset(state, table);
    }
}

/// Adds C closures, each with one integer upvalue, to the table on top.
pub unsafe fn set_methods(state: *mut lua_State, methods: &[(&CStr, ffi::lua_CFunction)], upvalue: i64) {
    unsafe {
        for &(name, function) in methods {
            ffi::lua_pushinteger(state, upvalue);
            ffi::lua_pushcclosure(state, function, 1);
            set_raw_field(state, -2, name);
        }
    }
}

/// Adds plain C functions to the table on top.
pub unsafe fn set_functions(state: *mut lua_State, functions: &[(&CStr, ffi::lua_CFunction)]) {
    unsafe {
        for &(name, function) in functions {
            ffi::lua_pushcfunction(state, function);
            set_raw_field(state, -2, name);
        }
    }
}
