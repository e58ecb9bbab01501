//! The Lua side of the host: the `luna` module, socket objects, the loop's
//! callbacks into scripts, and the boot sequence that hands control to the
//! runtime's `luna_entry`.
//!
//! `raw` holds the C API helpers and the stack contract every unsafe
//! function here shares; `host` the loop's state and the host-borrow rule;
//! `event_loop` runs a pass and `dispatch` makes the callbacks it causes;
//! `sockets`/`objects` are the socket methods and tables, `core_api` and
//! `introspect` the rest of the module's functions.

mod calls;
mod core_api;
mod dispatch;
mod event_loop;
mod host;
mod introspect;
mod objects;
mod pubsub_api;
mod raw;
mod runtime_files;
mod security_options;
mod sockets;
mod stubs;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;

use std::ffi::{CString, c_int};
use std::path::PathBuf;
use std::sync::Arc;

use crate::runtime::poller::Poller;
use mlua::ffi::{self, lua_State};
use mlua::{Lua, LuaOptions, StdLib, Table};

use crate::log;
use crate::net::NetCore;
use crate::rpc::PendingCalls;
use crate::runtime::timers::Timers;
use crate::runtime::{signals, watcher::Watcher};
use host::{Host, Refs};
use raw::{lossy, make_ref, push_str, raw_field, traceback};

/// What `luna entry.lua args...` runs.
pub struct Options {
    /// The entry script, or with `module` the name of a module to run as the entry.
    pub entry: String,
    /// `-m`: `entry` names a module that `require` finds.
    pub module: bool,
    /// Arguments after the entry.
    pub args: Vec<String>,
    /// Load the runtime Lua from this directory instead of the embedded copy.
    pub runtime_dir: Option<PathBuf>,
    /// `--metrics HOST:PORT`: serve `GET /metrics` there (`luna.options.metrics`).
    pub metrics: Option<Endpoint>,
    /// `--console HOST:PORT`: the debug console's address (`luna.options.console`).
    pub console: Option<Endpoint>,
}

/// A host and port from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// An IP address or host name (IPv6 without brackets).
    pub host: String,
    /// The port; 0 lets the system pick one.
    pub port: u16,
}

pub use stubs::write_stubs;

/// Runs an entry script to the end; returns the process exit status.
pub fn run(options: &Options) -> i32 {
    introspect::start_clock();
    match boot_host() {
        Ok(host) => host::install(host),
        Err(error) => {
            log::error(&format!("cannot start the event loop: {error}"));
            return 1;
        }
    }
    line_buffer_stdout();
    // SAFETY: the debug library is wanted (tracebacks, debug.traceback in scripts).
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::new()) };
    let mut status = 1;
    let outcome = install_module(&lua, options).and_then(|()| {
        // SAFETY: run_entry keeps the stack contract of raw.rs: the closure
        // runs in a protected call on this thread's state, and the host is
        // not borrowed.
        unsafe { lua.exec_raw::<()>((), |state| status = run_entry(state, options)) }
    });
    if let Err(error) = outcome {
        log::error(&format!("{error}"));
        status = 1;
    }
    drop(lua);
    host::uninstall();
    status
}

fn boot_host() -> std::io::Result<Host> {
    let poller = Arc::new(Poller::new()?);
    let quit = signals::install(Arc::clone(&poller))?;
    let watcher = match Watcher::new(Arc::clone(&poller)) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            log::warn(&format!("hot reload is off: cannot watch files ({error})"));
            None
        }
    };
    Ok(Host {
        net: NetCore::new(Arc::clone(&poller)),
        poller,
        timers: Timers::new(),
        watcher,
        quit,
        ready: Vec::new(),
        unhandled_forward_errors: 0,
        calls: PendingCalls::new(),
        workers: Vec::new(),
    })
}

/// Scripts print through C stdio: make it line-buffered so pipes see lines at once.
fn line_buffer_stdout() {
    unsafe extern "C" {
        static mut stdout: *mut libc::FILE;
    }
    // SAFETY: setvbuf on the process's stdout before anything was written to it.
    unsafe {
        libc::setvbuf(stdout, std::ptr::null_mut(), libc::_IOLBF, 0);
    }
}

/// Runs the runtime's `init` and then `luna_entry(entry, args...)`; returns the exit status.
///
/// # Safety
/// The [stack contract](raw#safety), with the `luna` module installed.
unsafe fn run_entry(state: *mut lua_State, options: &Options) -> c_int {
    // SAFETY: the caller's contract; the handler, function and arguments go
    // above `top`, which is restored, after a lua_checkstack for the arguments.
    unsafe {
        if !run_runtime_init(state, options) {
            return 1;
        }
        let top = ffi::lua_gettop(state);
        if ffi::lua_checkstack(state, 3 + options.args.len() as c_int) == 0 {
            log::error("too many arguments for the Lua stack");
            return 1;
        }
        ffi::lua_pushcfunction(state, traceback);
        ffi::lua_getglobal(state, c"luna_entry".as_ptr());
        if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
            log::error("the runtime defines no luna_entry function");
            ffi::lua_settop(state, top);
            return 1;
        }
        push_str(state, &options.entry);
        for arg in &options.args {
            push_str(state, arg);
        }
        let status = ffi::lua_pcall(state, 1 + options.args.len() as c_int, 0, top + 1);
        let code = if status == ffi::LUA_OK {
            0
        } else {
            // The runtime reports the script's own start-up errors as { message = ... },
            // already pointing at the user's file and line with one traceback.
            if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
                raw_field(state, -1, c"message");
                ffi::lua_replace(state, -2);
            }
            let message = lossy(state, -1);
            if log::has_file() {
                log::error(&message);
            }
            // Lines queued before the error come first on stderr too.
            log::flush(log::EXIT_FLUSH_LIMIT);
            eprintln!("luna: {message}");
            1
        };
        ffi::lua_settop(state, top);
        code
    }
}

/// Creates the registry tables, the `luna` global and its aliases. Start-up
/// only, so plain data goes through mlua's safe API; the C functions, the
/// registry slots the hot paths read and the searcher closure go through
/// the C API.
fn install_module(lua: &Lua, options: &Options) -> mlua::Result<()> {
    let luna = lua.create_table_with_capacity(0, 64)?;
    // SAFETY: the closure runs in a protected call with `luna` as argument 1
    // (on top) and keeps the stack contract; the host is not borrowed.
    unsafe { lua.exec_raw::<()>(&luna, |state| install_core(state)) }?;
    let args = lua.create_table_with_capacity(options.args.len(), 1)?;
    args.raw_set(0, options.entry.as_str())?;
    for (at, arg) in options.args.iter().enumerate() {
        args.raw_set(at + 1, arg.as_str())?;
    }
    luna.raw_set("args", args)?;
    let runtime_dir = options
        .runtime_dir
        .as_ref()
        .map(|dir| dir.to_string_lossy().into_owned());
    luna.raw_set("runtime_dir", runtime_dir)?;
    // luna.options: what the command line asks the runtime to start.
    let startup = lua.create_table_with_capacity(0, 2)?;
    for (name, endpoint) in [("metrics", &options.metrics), ("console", &options.console)] {
        if let Some(endpoint) = endpoint {
            let table = lua.create_table_with_capacity(0, 2)?;
            table.raw_set("host", endpoint.host.as_str())?;
            table.raw_set("port", endpoint.port)?;
            startup.raw_set(name, table)?;
        }
    }
    startup.raw_set("module", options.module)?;
    luna.raw_set("options", startup)?;
    // For the default package.cpath: the distribution's Lua module directory is per architecture.
    luna.raw_set("arch", std::env::consts::ARCH)?;

    let package: Table = lua.globals().get("package")?;
    let loaded: Table = package.get("loaded")?;
    loaded.set("luna", &luna)?;
    loaded.set("lbus", &luna)?;
    let dir = options.runtime_dir.as_deref();
    // SAFETY: the closure runs in a protected call with `package` as argument
    // 1 (on top), as add_searcher needs, and keeps the stack contract.
    unsafe { lua.exec_raw::<()>(&package, |state| runtime_files::add_searcher(state, dir)) }?;
    lua.globals().set("luna", luna)
}

/// Creates the registry tables and adds the core functions to the table on top.
///
/// # Safety
/// The [stack contract](raw#safety), with the `luna` table on top.
unsafe fn install_core(state: *mut lua_State) {
    // SAFETY: the caller's contract; each new table is popped into its
    // registry slot, leaving `luna` on top for `register`.
    unsafe {
        let objects = objects::create_registry_table(state);
        ffi::lua_createtable(state, 0, 0);
        let timers = make_ref(state);
        host::set_refs(Refs {
            objects,
            timers,
            ..Refs::NONE
        });
        core_api::register(state);
    }
}

/// Runs the runtime's `init` module; false (logged) when it fails.
///
/// # Safety
/// The [stack contract](raw#safety).
unsafe fn run_runtime_init(state: *mut lua_State, options: &Options) -> bool {
    // SAFETY: the caller's contract; the handler and the chunk (or its error)
    // go above `top`, which is restored.
    unsafe {
        let top = ffi::lua_gettop(state);
        ffi::lua_pushcfunction(state, traceback);
        let loaded = match runtime_files::load(state, options.runtime_dir.as_deref(), "init") {
            Ok(()) => ffi::lua_pcall(state, 0, 0, top + 1) == ffi::LUA_OK,
            Err(()) => false,
        };
        if !loaded {
            log::error(&format!("cannot start the runtime: {}", lossy(state, -1)));
        }
        ffi::lua_settop(state, top);
        loaded
    }
}

/// `luna --check FILE...`: compiles each file; returns 0 when all compile.
pub fn check(files: &[String]) -> i32 {
    let lua = Lua::new();
    let mut failed = false;
    for file in files {
        let Ok(path) = CString::new(file.as_str()) else {
            eprintln!("{file}: invalid file name");
            failed = true;
            continue;
        };
        // SAFETY: the closure runs in a protected call on a fresh state and
        // pops what it pushed; the path outlives the call. luaL_loadfilex
        // (not mlua's loader) so a `#!` line and its messages stay as Lua's.
        let result = unsafe {
            lua.exec_raw::<()>((), |state| {
                if ffi::luaL_loadfilex(state, path.as_ptr(), c"t".as_ptr()) != ffi::LUA_OK {
                    eprintln!("{}", lossy(state, -1));
                    failed = true;
                }
                ffi::lua_settop(state, 0);
            })
        };
        if let Err(error) = result {
            eprintln!("{file}: {error}");
            failed = true;
        }
    }
    i32::from(failed)
}
