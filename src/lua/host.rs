//! The process's runtime state, reachable from every Lua-facing C function.
//!
//! Rule that keeps this sound: `with_host` is never held across a Lua API
//! call that can run Lua code (calls, metamethods, or allocations, which may
//! run finalizers). Results are computed under the borrow and pushed after.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use polling::Poller;

use crate::net::{NetCore, Readiness, Token};
use crate::runtime::signals::QuitSignal;
use crate::runtime::timers::Timers;
use crate::runtime::waiter::Waiter;
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
    /// Waits on the poller with reused buffers.
    pub waiter: Waiter,
    /// Reused list of ready keys.
    pub ready: Vec<Readiness>,
}

/// Registry slots of the Lua tables the core uses.
#[derive(Clone, Copy, Default)]
pub struct Refs {
    /// token -> listener/stream table (weak values).
    pub objects: i32,
    /// timer id -> callback.
    pub timers: i32,
    /// Shared metatable of listener and stream tables (`__gc` closes).
    pub object_meta: i32,
    /// Runtime hook called with a quit signal number.
    pub on_signal: i32,
    /// Runtime hook called with the path of a changed file.
    pub on_file_changed: i32,
    /// Runtime hook called with the token and error of a stream that closed.
    pub on_stream_closed: i32,
}

thread_local! {
    static HOST: RefCell<Option<Host>> = const { RefCell::new(None) };
    static REFS: Cell<Refs> = const { Cell::new(Refs { objects: 0, timers: 0, object_meta: 0, on_signal: 0, on_file_changed: 0, on_stream_closed: 0 }) };
    static IN_PASS: Cell<bool> = const { Cell::new(false) };
    /// Table address -> token of listener and stream tables, for `__gc`.
    static OBJECT_TOKENS: RefCell<HashMap<usize, Token>> = RefCell::new(HashMap::new());
    /// Tokens whose tables were collected, to close at the next pass.
    static COLLECTED: RefCell<Vec<Token>> = const { RefCell::new(Vec::new()) };
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

/// Remembers which token a listener or stream table stands for.
pub fn remember_object(address: *const c_void, token: Token) {
    OBJECT_TOKENS.with(|map| map.borrow_mut().insert(address as usize, token));
}

/// Called from `__gc`: the table at `address` is garbage, so close its socket.
pub fn object_collected(address: *const c_void) {
    let token = OBJECT_TOKENS.with(|map| map.borrow_mut().remove(&(address as usize)));
    if let Some(token) = token {
        COLLECTED.with(|list| list.borrow_mut().push(token));
    }
}

/// Tokens whose tables were collected since the last call.
pub fn take_collected() -> Vec<Token> {
    COLLECTED.with(|list| std::mem::take(&mut *list.borrow_mut()))
}

/// True when collected tables wait for their sockets to close.
pub fn has_collected() -> bool {
    COLLECTED.with(|list| !list.borrow().is_empty())
}
