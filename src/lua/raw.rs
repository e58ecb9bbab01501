//! Small helpers over the Lua C API used by the hot paths, and the contract
//! every unsafe function of `lua` and `codec` that takes a state shares.
//!
//! # Safety
//!
//! **The stack contract.** An `unsafe fn` taking `state: *mut lua_State`
//! whose `# Safety` section points here may be called only when:
//!
//! 1. `state` is a live Lua state of this thread (or a coroutine of it),
//!    running inside a protected call: a C function Lua called, or the
//!    closure of `Lua::exec_raw`. A Lua error unwinds to that call.
//! 2. Every stack index passed in is acceptable (`1..=top`, a negative index
//!    of a live slot, or a pseudo-index), and the stack has room for what the
//!    function pushes: a C function starts with `LUA_MINSTACK` (20) free
//!    slots, the helpers here push at most three, and code that pushes a
//!    number of values it does not know in advance calls `lua_checkstack`.
//! 3. The host is not borrowed ([`with_host`](super::host::with_host)): the
//!    function may run Lua code (a call, a metamethod, a finalizer during an
//!    allocation), and that code may call back into the host.
//!
//! A C function (`unsafe extern "C-unwind" fn(*mut lua_State) -> c_int`) is
//! called by Lua only, which gives it all three.
//!
//! **Errors.** A Lua error leaves by `longjmp`, which must not cross Rust
//! frames that still own something with a destructor. [`raise`] and
//! `lua_error` are called with nothing owned live. Allocating calls can
//! raise a memory error too; the process's state has no memory limit, so
//! that takes a failing system allocator, a case this code (like most users
//! of the C API) does not defend against.
//!
//! **Strings.** A string's bytes stay where they are while the string is on
//! the stack (Lua 5.4's collector does not move objects). [`Args`] lends the
//! bytes of a C function's arguments as borrows of itself, so they cannot
//! outlive the call; [`with_bytes`] and [`with_str`] lend any other slot's
//! bytes to a closure only. No function here returns a borrow of Lua memory
//! whose lifetime its caller chooses.

use std::ffi::{CStr, c_int};

use mlua::ffi::{self, lua_State};

use crate::log;

/// The arguments of the running C function. Their slots stay on the stack
/// for the whole call, so string arguments are lent as borrows of this
/// value: they live no longer than it, and it lives no longer than the call.
pub struct Args {
    state: *mut lua_State,
    /// Arguments at creation: the slots `1..=count` this value vouches for.
    count: c_int,
}

impl Args {
    /// The arguments of the C function running on `state`.
    ///
    /// # Safety
    /// The [stack contract](self#safety) holds, and for as long as this value
    /// lives (keep it a local of the C function), the argument slots
    /// `1..=lua_gettop(state)` are neither removed nor replaced. Values may be
    /// pushed above them and popped again.
    pub unsafe fn new(state: *mut lua_State) -> Self {
        // SAFETY: `state` is live by the contract; lua_gettop only reads it.
        let count = unsafe { ffi::lua_gettop(state) };
        Self { state, count }
    }

    /// How many arguments the function got (the top of its stack at creation).
    pub fn count(&self) -> c_int {
        self.count
    }

    /// The state the arguments are on.
    pub fn state(&self) -> *mut lua_State {
        self.state
    }

    fn holds(&self, index: c_int) -> bool {
        (1..=self.count).contains(&index)
    }

    /// The Lua type of argument `index`; `LUA_TNONE` when there is no such argument.
    pub fn kind(&self, index: c_int) -> c_int {
        if !self.holds(index) {
            return ffi::LUA_TNONE;
        }
        // SAFETY: `index` is one of the argument slots `new` vouched for.
        unsafe { ffi::lua_type(self.state, index) }
    }

    /// The bytes of a string argument (numbers are not converted).
    pub fn bytes(&self, index: c_int) -> Option<&[u8]> {
        if self.kind(index) != ffi::LUA_TSTRING {
            return None;
        }
        // SAFETY: the slot holds a string (so lua_tolstring converts and
        // allocates nothing) and stays on the stack while `self` lives, which
        // the returned borrow cannot outlive.
        unsafe { Some(string_bytes(self.state, index)) }
    }

    /// A string argument as UTF-8 text.
    pub fn str(&self, index: c_int) -> Option<&str> {
        self.bytes(index).and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    /// An integer argument; floats with an integral value are accepted.
    pub fn integer(&self, index: c_int) -> Option<i64> {
        if !self.holds(index) {
            return None;
        }
        // SAFETY: `index` is one of the argument slots `new` vouched for.
        unsafe { integer_arg(self.state, index) }
    }

    /// A number argument as a float (strings are not converted).
    pub fn number(&self, index: c_int) -> Option<f64> {
        if self.kind(index) != ffi::LUA_TNUMBER {
            return None;
        }
        // SAFETY: `index` is an argument slot holding a number.
        Some(unsafe { ffi::lua_tonumberx(self.state, index, std::ptr::null_mut()) })
    }

    /// An argument's truth: false for nil, false and no argument, true otherwise.
    pub fn boolean(&self, index: c_int) -> bool {
        // SAFETY: `index` is one of the argument slots `new` vouched for.
        self.holds(index) && unsafe { ffi::lua_toboolean(self.state, index) } != 0
    }

    /// True when argument `index` is absent or nil.
    pub fn is_none_or_nil(&self, index: c_int) -> bool {
        matches!(self.kind(index), ffi::LUA_TNONE | ffi::LUA_TNIL)
    }
}

/// The bytes of the string at `index`, for a borrow its caller bounds.
///
/// # Safety
/// The [stack contract](self#safety) holds, the value at `index` is a string,
/// and the returned slice is dropped before that slot is removed or replaced.
unsafe fn string_bytes<'s>(state: *mut lua_State, index: c_int) -> &'s [u8] {
    let mut len = 0usize;
    // SAFETY: a string slot (the caller's promise): lua_tolstring returns a
    // pointer to its `len` bytes, valid while the string is on the stack.
    unsafe {
        let ptr = ffi::lua_tolstring(state, index, &mut len);
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

/// Lends the bytes of the value at `index` to `f` (None unless a string:
/// numbers are not converted).
///
/// # Safety
/// The [stack contract](self#safety) holds, and `f` does not remove or
/// replace the slot at `index`.
pub unsafe fn with_bytes<R>(state: *mut lua_State, index: c_int, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    // SAFETY: `index` is acceptable (the contract); a string's bytes stay on
    // the stack while `f`, the only holder of the borrow, runs.
    unsafe {
        if ffi::lua_type(state, index) != ffi::LUA_TSTRING {
            return f(None);
        }
        f(Some(string_bytes(state, index)))
    }
}

/// Lends the value at `index` as UTF-8 text to `f` (None unless UTF-8 text).
///
/// # Safety
/// As [`with_bytes`].
pub unsafe fn with_str<R>(state: *mut lua_State, index: c_int, f: impl FnOnce(Option<&str>) -> R) -> R {
    // SAFETY: forwarded from the caller.
    unsafe { with_bytes(state, index, |bytes| f(bytes.and_then(|b| std::str::from_utf8(b).ok()))) }
}

/// Pushes a Rust string.
///
/// # Safety
/// The [stack contract](self#safety).
pub unsafe fn push_str(state: *mut lua_State, text: &str) {
    // SAFETY: the contract; lua_pushlstring copies `text` during the call.
    unsafe { ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len()) };
}

/// Pushes `nil, message`; returns 2 for a C function to return.
///
/// # Safety
/// The [stack contract](self#safety).
pub unsafe fn push_fail(state: *mut lua_State, message: impl AsRef<str>) -> c_int {
    // SAFETY: the contract, which leaves room for two values.
    unsafe {
        ffi::lua_pushnil(state);
        push_str(state, message.as_ref());
    }
    2
}

/// Pushes `nil, error, detail` (what exactly was wrong); returns 3.
///
/// # Safety
/// The [stack contract](self#safety).
pub unsafe fn push_fail_detail(state: *mut lua_State, error: impl AsRef<str>, detail: &str) -> c_int {
    // SAFETY: the contract, which leaves room for three values.
    unsafe {
        push_fail(state, error);
        push_str(state, detail);
    }
    3
}

/// An integer argument; floats with an integral value are accepted.
///
/// # Safety
/// The [stack contract](self#safety).
pub unsafe fn integer_arg(state: *mut lua_State, index: c_int) -> Option<i64> {
    // SAFETY: the contract makes `index` acceptable; neither call allocates.
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
///
/// # Safety
/// The [stack contract](self#safety), on the state of a running C function
/// (a closure without upvalues reads as 0).
pub unsafe fn upvalue_integer(state: *mut lua_State) -> i64 {
    // SAFETY: an upvalue pseudo-index is acceptable in a running C function.
    unsafe { ffi::lua_tointegerx(state, ffi::lua_upvalueindex(1), std::ptr::null_mut()) }
}

/// Raises a Lua error with a static message.
///
/// # Safety
/// The [stack contract](self#safety), and nothing with a destructor is live
/// in the Rust frames between here and the protected call (they are skipped).
pub unsafe fn raise(state: *mut lua_State, message: &'static CStr) -> ! {
    // SAFETY: the contract gives a protected call to unwind to; the caller
    // owns nothing the longjmp would skip.
    unsafe {
        ffi::lua_pushstring(state, message.as_ptr());
        ffi::lua_error(state)
    }
}

/// Message handler for `lua_pcall`: the error with a traceback. Table errors
/// pass through unchanged (they carry their own message).
///
/// # Safety
/// A C function: Lua calls it (see the [stack contract](self#safety)), with
/// the error as argument 1.
pub unsafe extern "C-unwind" fn traceback(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it with one argument, the error; luaL_traceback
    // copies the message it is given while the message is still on the stack.
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
///
/// # Safety
/// The [stack contract](self#safety), with the function and its `nargs`
/// arguments on top.
pub unsafe fn pcall_logged(state: *mut lua_State, nargs: c_int, context: &dyn Fn() -> String) -> bool {
    debug_assert!(!super::host::is_borrowed(), "Lua code runs while the host is borrowed");
    // SAFETY: the function and its arguments are on top (the caller's
    // promise); the handler goes below them and is removed after the call.
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
///
/// # Safety
/// The [stack contract](self#safety).
pub unsafe fn lossy(state: *mut lua_State, index: c_int) -> String {
    // SAFETY: the contract; the bytes are copied before `with_bytes` returns,
    // and luaL_typename returns a static string.
    unsafe {
        with_bytes(state, index, |bytes| {
            bytes.map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .unwrap_or_else(|| {
            CStr::from_ptr(ffi::luaL_typename(state, index))
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// Pushes `registry[slot]`.
///
/// # Safety
/// The [stack contract](self#safety).
pub unsafe fn push_ref(state: *mut lua_State, slot: c_int) {
    // SAFETY: the registry pseudo-index is always acceptable; a raw get runs no metamethod.
    unsafe { ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, slot.into()) };
}

/// Pops the top value into a new registry slot.
///
/// # Safety
/// The [stack contract](self#safety), with a value on top.
pub unsafe fn make_ref(state: *mut lua_State) -> c_int {
    // SAFETY: a value is on top (the caller's promise) for luaL_ref to pop.
    unsafe { ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX) }
}

/// Pushes `table[name]` without metamethods; returns its Lua type.
///
/// # Safety
/// The [stack contract](self#safety), with a table at `table`.
pub unsafe fn raw_field(state: *mut lua_State, table: c_int, name: &CStr) -> c_int {
    // SAFETY: a table at `table` (the caller's promise), made absolute before
    // the push moves the top; lua_rawget pops the key and pushes the value.
    unsafe {
        let table = ffi::lua_absindex(state, table);
        ffi::lua_pushstring(state, name.as_ptr());
        ffi::lua_rawget(state, table)
    }
}

/// Sets `table[name] = value on top` without metamethods (pops the value).
///
/// # Safety
/// The [stack contract](self#safety), with a table at `table` and the value on top.
pub unsafe fn set_raw_field(state: *mut lua_State, table: c_int, name: &CStr) {
    // SAFETY: a table at `table` and a value on top (the caller's promise);
    // the key goes below the value, and lua_rawset pops both.
    unsafe {
        let table = ffi::lua_absindex(state, table);
        ffi::lua_pushstring(state, name.as_ptr());
        ffi::lua_insert(state, -2);
        ffi::lua_rawset(state, table);
    }
}

/// Adds C closures, each with one integer upvalue, to the table on top.
///
/// # Safety
/// The [stack contract](self#safety), with a table on top.
pub unsafe fn set_methods(state: *mut lua_State, methods: &[(&CStr, ffi::lua_CFunction)], upvalue: i64) {
    // SAFETY: a table on top (the caller's promise); each round pushes two
    // values, makes them one closure and sets it, leaving the table on top.
    unsafe {
        for &(name, function) in methods {
            ffi::lua_pushinteger(state, upvalue);
            ffi::lua_pushcclosure(state, function, 1);
            set_raw_field(state, -2, name);
        }
    }
}

/// Adds plain C functions to the table on top.
///
/// # Safety
/// The [stack contract](self#safety), with a table on top.
pub unsafe fn set_functions(state: *mut lua_State, functions: &[(&CStr, ffi::lua_CFunction)]) {
    // SAFETY: a table on top (the caller's promise); each round pushes one
    // function and sets it, leaving the table on top.
    unsafe {
        for &(name, function) in functions {
            ffi::lua_pushcfunction(state, function);
            set_raw_field(state, -2, name);
        }
    }
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::*;

    /// Runs `f` in a protected call with `args` as the call's arguments.
    fn with_args(args: impl mlua::IntoLuaMulti, f: impl FnOnce(*mut lua_State)) {
        let lua = Lua::new();
        // SAFETY: each test's closure keeps the stack contract.
        unsafe { lua.exec_raw::<()>(args, f) }.unwrap();
    }

    #[test]
    fn args_read_only_their_own_slots_and_never_convert() {
        let bytes = mlua::LuaString::wrap(b"\xff\x00z");
        // SAFETY: the arguments of this protected call; nothing removes them.
        with_args(("text", 42, 3.0, 3.5, true, bytes), |state| unsafe {
            let args = Args::new(state);
            assert_eq!(args.count(), 6);
            assert_eq!(args.str(1), Some("text"));
            assert_eq!(args.bytes(2), None, "a number is not a string argument");
            assert_eq!(ffi::lua_type(state, 2), ffi::LUA_TNUMBER, "and stays a number");
            assert_eq!(args.integer(2), Some(42));
            assert_eq!(args.integer(3), Some(3), "an integral float is an integer");
            assert_eq!(args.integer(4), None);
            assert_eq!(args.number(4), Some(3.5));
            assert_eq!(args.integer(1), None, "a string is not an integer");
            assert!(args.boolean(5) && args.boolean(1));
            assert_eq!(args.bytes(6), Some(&b"\xff\x00z"[..]));
            assert_eq!(args.str(6), None, "not UTF-8");
            for outside in [0, -1, 7, ffi::LUA_REGISTRYINDEX] {
                assert_eq!(args.kind(outside), ffi::LUA_TNONE, "index {outside}");
                assert_eq!(args.bytes(outside), None);
                assert_eq!(args.integer(outside), None);
                assert!(!args.boolean(outside));
                assert!(args.is_none_or_nil(outside));
            }
        });
    }

    #[test]
    fn args_bytes_stay_valid_while_values_come_and_go_above_them() {
        // SAFETY: the arguments of this protected call; only slots above them change.
        with_args(("kept",), |state| unsafe {
            let args = Args::new(state);
            let kept = args.bytes(1).unwrap();
            for n in 0..1000 {
                push_str(state, &format!("filler {n}"));
                ffi::lua_pop(state, 1);
            }
            ffi::lua_gc(state, ffi::LUA_GCCOLLECT, 0);
            assert_eq!(kept, b"kept");
        });
    }

    #[test]
    fn with_bytes_lends_any_slot_and_converts_nothing() {
        // SAFETY: a protected call; the values pushed are popped.
        with_args((), |state| unsafe {
            push_str(state, "top");
            ffi::lua_pushinteger(state, 7);
            assert_eq!(with_bytes(state, -2, |b| b.map(<[u8]>::to_vec)), Some(b"top".to_vec()));
            assert!(with_bytes(state, -1, |b| b.is_none()));
            assert_eq!(with_str(state, -2, |s| s.map(str::len)), Some(3));
            assert_eq!(lossy(state, -2), "top");
            assert_eq!(lossy(state, -1), "number");
            assert_eq!(ffi::lua_type(state, -1), ffi::LUA_TNUMBER, "lossy converts nothing");
            ffi::lua_settop(state, 0);
        });
    }

    #[test]
    fn raw_fields_ignore_metamethods() {
        let lua = Lua::new();
        let table: mlua::Table = lua
            .load("return setmetatable({ own = 1 }, { __index = function() return 'meta' end, __newindex = function() error('no') end })")
            .eval()
            .unwrap();
        // SAFETY: a protected call with the table as argument 1.
        unsafe {
            lua.exec_raw::<()>(&table, |state| {
                assert_eq!(raw_field(state, 1, c"own"), ffi::LUA_TNUMBER);
                assert_eq!(raw_field(state, 1, c"other"), ffi::LUA_TNIL, "no __index");
                ffi::lua_settop(state, 1);
                ffi::lua_pushinteger(state, 5);
                set_raw_field(state, 1, c"added");
                assert_eq!(ffi::lua_gettop(state), 1, "the value is popped");
            })
        }
        .unwrap();
        assert_eq!(table.raw_get::<i64>("added").unwrap(), 5, "no __newindex");
    }

    #[test]
    fn pcall_logged_reports_and_leaves_the_stack_as_it_was() {
        let lua = Lua::new();
        let (good, bad): (mlua::Function, mlua::Function) = lua
            .load("return function(a, b) assert(a + b == 3) end, function() error({}) end")
            .eval()
            .unwrap();
        // SAFETY: a protected call with the two functions as arguments.
        unsafe {
            lua.exec_raw::<()>((good, bad), |state| {
                ffi::lua_pushvalue(state, 1);
                ffi::lua_pushinteger(state, 1);
                ffi::lua_pushinteger(state, 2);
                assert!(pcall_logged(state, 2, &|| "good".into()));
                assert_eq!(ffi::lua_gettop(state), 2);
                ffi::lua_pushvalue(state, 2);
                assert!(
                    !pcall_logged(state, 0, &|| "bad".into()),
                    "a table error is an error too"
                );
                assert_eq!(ffi::lua_gettop(state), 2);
            })
        }
        .unwrap();
    }

    #[test]
    fn traceback_names_a_non_string_error() {
        let lua = Lua::new();
        // SAFETY: a protected call; traceback is called as Lua would, with one argument.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                ffi::lua_pushcfunction(state, traceback);
                ffi::lua_pushboolean(state, 1);
                ffi::lua_call(state, 1, 1);
                let text = lossy(state, -1);
                assert!(text.starts_with("(error object is a boolean value)"), "{text}");
                assert!(text.contains("stack traceback"), "{text}");
                ffi::lua_settop(state, 0);
            })
        }
        .unwrap();
    }

    #[test]
    fn fail_helpers_push_what_they_count() {
        // SAFETY: a protected call; what is pushed is popped.
        with_args((), |state| unsafe {
            assert_eq!(push_fail(state, "closed"), 2);
            assert_eq!(push_fail_detail(state, "invalid-param", "why"), 3);
            assert_eq!(ffi::lua_gettop(state), 5);
            assert_eq!(ffi::lua_type(state, 1), ffi::LUA_TNIL);
            assert_eq!(lossy(state, 2), "closed");
            assert_eq!(ffi::lua_type(state, 3), ffi::LUA_TNIL);
            assert_eq!(
                (lossy(state, 4), lossy(state, 5)),
                ("invalid-param".into(), "why".into())
            );
            ffi::lua_settop(state, 0);
        });
    }
}
