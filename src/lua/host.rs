//! The process's runtime state, reachable from every Lua-facing C function.
//!
//! # The host-borrow rule
//!
//! `with_host` is never held across a Lua API call that can run Lua code:
//! a call, a metamethod, or an allocation (which may run a finalizer). That
//! code could call a C function that borrows the host again. So a closure
//! given to `with_host` computes plain Rust values, and the caller pushes
//! them after the borrow ends; values the host needs from Lua (an encoded
//! message, a string argument) are read before it begins. Reading the bytes
//! of a string already on the stack calls no Lua API and is allowed.
//!
//! Enforced by: `with_host` panics with a message naming this rule if it is
//! entered again; `raw::pcall_logged`, the one way callbacks run, checks the
//! host is free in debug builds; and [`is_borrowed`] lets tests check it.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::runtime::poller::Poller;

use crate::net::{NetCore, Readiness};
use crate::rpc::PendingCalls;
use crate::runtime::signals::QuitSignal;
use crate::runtime::timers::Timers;
use crate::runtime::watcher::Watcher;

/// A Lua timer: whether it repeats (its callback lives in the timers table).
pub type LuaTimer = bool;

/// Everything the loop owns.
pub struct Host {
    /// The one poller of the process.
    pub poller: Arc<Poller>,
    /// Sockets and managers.
    pub net: NetCore,
    /// Script timers.
    pub timers: Timers<LuaTimer>,
    /// Imported-file watcher, when the platform gave us one.
    pub watcher: Option<Watcher>,
    /// SIGTERM/SIGINT waiting for the loop.
    pub quit: Arc<QuitSignal>,
    /// Reused list of ready keys.
    pub ready: Vec<Readiness>,
    /// Forward failures reported to streams without `on_forward_error` (logged sparsely).
    pub unhandled_forward_errors: u64,
    /// RPC calls of this process waiting for their answers.
    pub calls: PendingCalls,
    /// Registry references of idle worker coroutines (calls are served in them).
    pub workers: Vec<i32>,
}

/// Registry slots of the Lua tables the core uses.
#[derive(Clone, Copy)]
pub struct Refs {
    /// token -> listener/stream table, while the socket is open.
    pub objects: i32,
    /// timer id -> callback.
    pub timers: i32,
    /// Runtime hook called with a quit signal number.
    pub on_signal: i32,
    /// Runtime hook called with the path of a changed file.
    pub on_file_changed: i32,
    /// Runtime hook called with the token and error of a stream that closed.
    pub on_stream_closed: i32,
    /// coroutine -> trace id of the message it handles (weak keys; runtime_lua/trace.lua).
    pub traces: i32,
    /// The body of the core's worker coroutines: runs a job, then yields `rpc_parked`.
    pub rpc_worker: i32,
    /// What a worker coroutine yields when its job is done (runtime_lua/rpc.lua).
    pub rpc_parked: i32,
}

impl Refs {
    /// No tables yet: every slot is `LUA_REFNIL` (pushes nil).
    pub const NONE: Refs = Refs {
        objects: mlua::ffi::LUA_REFNIL,
        timers: mlua::ffi::LUA_REFNIL,
        on_signal: mlua::ffi::LUA_REFNIL,
        on_file_changed: mlua::ffi::LUA_REFNIL,
        on_stream_closed: mlua::ffi::LUA_REFNIL,
        traces: mlua::ffi::LUA_REFNIL,
        rpc_worker: mlua::ffi::LUA_REFNIL,
        rpc_parked: mlua::ffi::LUA_REFNIL,
    };
}

thread_local! {
    /// The host, borrowed by `with_host`.
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
    /// Read on every callback, so kept out of the host: reading them takes
    /// no borrow, and their thread-local has no destructor to register.
    static LOOP: Loop = const { Loop { refs: Cell::new(Refs::NONE), in_pass: Cell::new(false) } };
}

/// The loop's own small state, beside the host.
struct Loop {
    /// The registry slots of the core's tables and hooks.
    refs: Cell<Refs>,
    /// A pass is running (a nested `wait` is an error).
    in_pass: Cell<bool>,
}

/// Installs the host of this thread.
pub fn install(host: Host) {
    HOST.with(|cell| *cell.borrow_mut() = Some(host));
}

/// Drops the host of this thread (closing every socket) and forgets the registry slots.
pub fn uninstall() {
    LOOP.with(|state| state.refs.set(Refs::NONE));
    let host = HOST.with(|cell| cell.borrow_mut().take());
    drop(host);
}

/// Runs `f` with the host borrowed. `f` must not call Lua (the rule above).
#[inline]
pub fn with_host<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|cell| {
        let Ok(mut guard) = cell.try_borrow_mut() else {
            panic!("the luna host was borrowed again: Lua ran inside with_host (see lua/host.rs)");
        };
        let host = guard.as_mut().expect("luna host is installed before Lua runs");
        f(host)
    })
}

/// True while `with_host` runs on this thread.
pub fn is_borrowed() -> bool {
    HOST.with(|cell| cell.try_borrow_mut().is_err())
}

/// The registry slots.
#[inline]
pub fn refs() -> Refs {
    LOOP.with(|state| state.refs.get())
}

/// Sets the registry slots.
pub fn set_refs(refs: Refs) {
    LOOP.with(|state| state.refs.set(refs));
}

/// Marks the loop as running; false if it already was (a nested wait).
pub fn enter_pass() -> bool {
    LOOP.with(|state| !state.in_pass.replace(true))
}

/// Marks the loop as no longer running.
pub fn leave_pass() {
    LOOP.with(|state| state.in_pass.set(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::test_support::Bindings;

    #[test]
    fn a_second_borrow_panics_naming_the_rule() {
        let _bindings = Bindings::new();
        assert!(!is_borrowed());
        assert!(with_host(|_| is_borrowed()));
        let nested = std::panic::catch_unwind(|| with_host(|_| with_host(|_| ())));
        let message = nested.expect_err("a nested borrow panics");
        let message = message.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(message.contains("Lua ran inside with_host"), "{message}");
        assert!(!is_borrowed(), "the outer borrow ended with the panic");
    }

    #[test]
    fn the_pass_flag_refuses_a_nested_pass() {
        assert!(enter_pass());
        assert!(!enter_pass(), "already in a pass");
        leave_pass();
        assert!(enter_pass());
        leave_pass();
    }
}
