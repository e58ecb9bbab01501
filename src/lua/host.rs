//! The process's runtime state, reachable from every Lua-facing C function.
//!
//! Rule that keeps this sound: `with_host` is never held across a Lua API
//! call that can run Lua code (calls, metamethods, or allocations, which may
//! run finalizers). Results are computed under the borrow and pushed after.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::runtime::poller::Poller;

use crate::net::{NetCore, Readiness};
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
}

/// Registry slots of the Lua tables the core uses.
#[derive(Clone, Copy, Default)]
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
}

thread_local! {
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
    static REFS: Cell<Refs> = const { Cell::new(Refs { objects: 0, timers: 0, on_signal: 0, on_file_changed: 0, on_stream_closed: 0 }) };
    static IN_PASS: Cell<bool> = const { Cell::new(false) };
}

/// Installs the host of this thread.
pub fn install(host: Host) {
    HOST.with(|cell| *cell.borrow_mut() = Some(host));
}

/// Drops the host of this thread (closing every socket).
pub fn uninstall() {
    HOST.with(|cell| cell.borrow_mut().take());
}

/// Runs `f` with the host borrowed. Never call Lua inside `f`.
pub fn with_host<R>(f: impl FnOnce(&mut Host) -> R) -> R {
    HOST.with(|cell| {
        let mut guard = cell.borrow_mut();
        let host = guard.as_mut().expect("luna host is installed before Lua runs");
        f(host)
    })
}

/// The registry slots.
pub fn refs() -> Refs {
    REFS.with(Cell::get)
}

/// Sets the registry slots.
pub fn set_refs(refs: Refs) {
    REFS.with(|cell| cell.set(refs));
}

/// Marks the loop as running; false if it already was (a nested wait).
pub fn enter_pass() -> bool {
    IN_PASS.with(|cell| !cell.replace(true))
}

/// Marks the loop as no longer running.
pub fn leave_pass() {
    IN_PASS.with(|cell| cell.set(false));
}
