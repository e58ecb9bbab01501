//! Helpers for the unit tests of the Lua bindings: a Lua state with the
//! core functions of the `luna` module, on a thread with a host of its own.

use std::ffi::c_int;
use std::sync::Arc;

use mlua::ffi::{self, lua_State};
use mlua::{FromLuaMulti, IntoLuaMulti, Lua};

use super::host::{self, Host};
use crate::net::NetCore;
use crate::rpc::PendingCalls;
use crate::runtime::poller::Poller;
use crate::runtime::signals::QuitSignal;
use crate::runtime::timers::Timers;

/// A Lua state whose global `luna` has the core functions, and a host
/// installed on this thread (each test runs on a thread of its own);
/// dropping it uninstalls the host.
pub struct Bindings {
    /// The state; `eval` runs chunks on it.
    pub lua: Lua,
}

impl Bindings {
    /// A fresh state and host.
    pub fn new() -> Self {
        let poller = Arc::new(Poller::new().expect("a poller"));
        host::install(Host {
            net: NetCore::new(Arc::clone(&poller)),
            poller,
            timers: Timers::new(),
            watcher: None,
            quit: Arc::new(QuitSignal::default()),
            ready: Vec::new(),
            unhandled_forward_errors: 0,
            calls: PendingCalls::new(),
            workers: Vec::new(),
        });
        let lua = Lua::new();
        let luna = lua.create_table().expect("a table");
        // SAFETY: install_core keeps the stack contract in the protected call
        // exec_raw makes, with `luna` as argument 1 (on top).
        unsafe { lua.exec_raw::<()>(&luna, |state| super::install_core(state)) }.expect("core functions");
        lua.globals().set("luna", luna).expect("global luna");
        Bindings { lua }
    }

    /// Runs `code` and converts what it returns; panics with the Lua error.
    pub fn eval<T: FromLuaMulti>(&self, code: &str) -> T {
        self.lua
            .load(code)
            .eval()
            .unwrap_or_else(|error| panic!("{code}: {error}"))
    }

    /// Runs `f` on the raw state in a protected call, with `args` as the
    /// arguments of that call (slots `1..=n`).
    ///
    /// # Safety
    /// `f` keeps the [stack contract](super::raw#safety).
    pub unsafe fn raw(&self, args: impl IntoLuaMulti, f: impl FnOnce(*mut lua_State)) {
        // SAFETY: forwarded from the caller.
        unsafe { self.lua.exec_raw::<()>(args, f) }.expect("no Lua error");
    }
}

impl Drop for Bindings {
    fn drop(&mut self) {
        host::uninstall();
    }
}

/// The top of the stack, to check a function leaves it as it found it.
///
/// # Safety
/// `state` is live.
pub unsafe fn top(state: *mut lua_State) -> c_int {
    // SAFETY: the caller's promise; lua_gettop only reads.
    unsafe { ffi::lua_gettop(state) }
}
