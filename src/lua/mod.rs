//! The Lua side of the host: the `luna` module, socket objects, the loop's
//! callbacks into scripts, and the boot sequence that hands control to the
//! runtime's `luna_entry`.

mod core_api;
mod host;
mod introspect;
mod objects;
mod pass;
mod pubsub_api;
mod raw;
mod runtime_files;
mod security_options;
mod sockets;
mod stubs;

use std::ffi::{CString, c_int};
use std::path::PathBuf;
use std::sync::Arc;

use crate::runtime::poller::Poller;
use mlua::ffi::{self, lua_State};
use mlua::{Lua, LuaOptions, StdLib};

use crate::log;
use crate::net::NetCore;
use crate::runtime::timers::Timers;
use crate::runtime::{signals, watcher::Watcher};
use host::{Host, Refs};
use raw::{lossy, make_ref, push_str, raw_field, set_raw_field, traceback};

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
    // SAFETY: everything below follows the Lua C API stack discipline.
    let outcome = unsafe { lua.exec_raw::<()>((), |state| status = run_entry(state, options)) };
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

unsafe fn run_entry(state: *mut lua_State, options: &Options) -> c_int {
    unsafe {
        install_module(state, options);
        if !run_runtime_init(state, options) {
            return 1;
        }
        let top = ffi::lua_gettop(state);
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

/// Creates the registry tables, the `luna` global and its aliases.
unsafe fn install_module(state: *mut lua_State, options: &Options) {
    unsafe {
        let objects = objects::create_registry_table(state);
        ffi::lua_createtable(state, 0, 0);
        let timers = make_ref(state);
        host::set_refs(Refs {
            objects,
            timers,
            on_signal: ffi::LUA_REFNIL,
            on_file_changed: ffi::LUA_REFNIL,
            on_stream_closed: ffi::LUA_REFNIL,
        });

        ffi::lua_createtable(state, 0, 64);
        core_api::register(state);
        ffi::lua_createtable(state, options.args.len() as c_int, 1);
        push_str(state, &options.entry);
        ffi::lua_rawseti(state, -2, 0);
        for (at, arg) in options.args.iter().enumerate() {
            push_str(state, arg);
            ffi::lua_rawseti(state, -2, at as i64 + 1);
        }
        set_raw_field(state, -2, c"args");
        match &options.runtime_dir {
            Some(dir) => push_str(state, &dir.to_string_lossy()),
            None => ffi::lua_pushnil(state),
        }
        set_raw_field(state, -2, c"runtime_dir");
        // luna.options: what the command line asks the runtime to start.
        ffi::lua_createtable(state, 0, 2);
        for (name, endpoint) in [(c"metrics", &options.metrics), (c"console", &options.console)] {
            if let Some(endpoint) = endpoint {
                ffi::lua_createtable(state, 0, 2);
                push_str(state, &endpoint.host);
                set_raw_field(state, -2, c"host");
                ffi::lua_pushinteger(state, i64::from(endpoint.port));
                set_raw_field(state, -2, c"port");
                set_raw_field(state, -2, name);
            }
        }
        ffi::lua_pushboolean(state, c_int::from(options.module));
        set_raw_field(state, -2, c"module");
        set_raw_field(state, -2, c"options");
        // For the default package.cpath: the distribution's Lua module directory is per architecture.
        push_str(state, std::env::consts::ARCH);
        set_raw_field(state, -2, c"arch");

        ffi::lua_getglobal(state, c"package".as_ptr());
        ffi::lua_getfield(state, -1, c"loaded".as_ptr());
        for name in [c"luna", c"lbus"] {
            ffi::lua_pushvalue(state, -3);
            ffi::lua_setfield(state, -2, name.as_ptr());
        }
        ffi::lua_pop(state, 1);
        runtime_files::add_searcher(state, options.runtime_dir.as_deref());
        ffi::lua_pop(state, 1);
        ffi::lua_setglobal(state, c"luna".as_ptr());
    }
}

unsafe fn run_runtime_init(state: *mut lua_State, options: &Options) -> bool {
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
        // SAFETY: loads one chunk and pops what it pushed.
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
