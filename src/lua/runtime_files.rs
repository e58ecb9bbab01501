//! The runtime Lua of `runtime_lua/`, compiled in; `--runtime DIR` reads it
//! from disk instead, so users can change the runtime without rebuilding.
//! `require("luna.rpc")` finds `runtime_lua/rpc.lua` either way.

use std::ffi::{CString, c_int};
use std::path::{Path, PathBuf};

use mlua::ffi::{self, lua_State};

use super::raw::{Args, push_str, with_str};

/// (module name, source) of every runtime file.
const FILES: &[(&str, &str)] = &[
    ("init", include_str!("../../runtime_lua/init.lua")),
    ("log", include_str!("../../runtime_lua/log.lua")),
    ("timer", include_str!("../../runtime_lua/timer.lua")),
    ("import", include_str!("../../runtime_lua/import.lua")),
    ("entry", include_str!("../../runtime_lua/entry.lua")),
    ("trace", include_str!("../../runtime_lua/trace.lua")),
    ("rpc", include_str!("../../runtime_lua/rpc.lua")),
    ("cluster", include_str!("../../runtime_lua/cluster.lua")),
    ("membership", include_str!("../../runtime_lua/membership.lua")),
    ("pubsub", include_str!("../../runtime_lua/pubsub.lua")),
    ("router", include_str!("../../runtime_lua/router.lua")),
    ("redis", include_str!("../../runtime_lua/redis.lua")),
    ("lease", include_str!("../../runtime_lua/lease.lua")),
    ("discovery", include_str!("../../runtime_lua/discovery.lua")),
    ("metrics", include_str!("../../runtime_lua/metrics.lua")),
    ("console", include_str!("../../runtime_lua/console.lua")),
];

/// Pushes the compiled chunk of runtime module `name`, or an error message.
///
/// # Safety
/// The [stack contract](super::raw#safety).
pub unsafe fn load(state: *mut lua_State, dir: Option<&Path>, name: &str) -> Result<(), ()> {
    let on_disk = dir
        .map(|dir| dir.join(format!("{name}.lua")))
        .filter(|path| path.is_file());
    let (source, chunk_name) = match on_disk {
        Some(path) => match std::fs::read(&path) {
            Ok(bytes) => (bytes, format!("@{}", path.display())),
            Err(error) => {
                // SAFETY: the caller's contract.
                unsafe { push_str(state, &format!("cannot read {}: {error}", path.display())) };
                return Err(());
            }
        },
        None => match FILES.iter().find(|(file, _)| *file == name) {
            Some((_, source)) => (source.as_bytes().to_vec(), format!("@runtime_lua/{name}.lua")),
            None => {
                // SAFETY: the caller's contract.
                unsafe { push_str(state, &format!("no runtime module '{name}'")) };
                return Err(());
            }
        },
    };
    let chunk_name = CString::new(chunk_name).unwrap_or_default();
    // SAFETY: the caller's contract; the source and both names outlive the
    // call, which copies what it keeps and pushes one value (chunk or error).
    let status = unsafe {
        ffi::luaL_loadbufferx(
            state,
            source.as_ptr().cast(),
            source.len(),
            chunk_name.as_ptr(),
            c"t".as_ptr(),
        )
    };
    if status == ffi::LUA_OK { Ok(()) } else { Err(()) }
}

/// Adds a `package.searchers` entry for `luna.<name>` modules (the `package` table is on top).
///
/// # Safety
/// The [stack contract](super::raw#safety), with the `package` table on top.
pub unsafe fn add_searcher(state: *mut lua_State, dir: Option<&Path>) {
    // SAFETY: `package` on top (the caller's promise), whose `searchers` is
    // a list; the entries move up one by raw gets and sets, and the list is
    // popped at the end.
    unsafe {
        ffi::lua_getfield(state, -1, c"searchers".as_ptr());
        match dir {
            Some(dir) => push_str(state, &dir.to_string_lossy()),
            None => ffi::lua_pushnil(state),
        }
        ffi::lua_pushcclosure(state, search, 1);
        // Insert at position 2, after the preload searcher.
        let len = ffi::lua_rawlen(state, -2) as i64;
        for at in (2..=len).rev() {
            ffi::lua_rawgeti(state, -2, at);
            ffi::lua_rawseti(state, -3, at + 1);
        }
        ffi::lua_rawseti(state, -2, 2);
        ffi::lua_pop(state, 1);
    }
}

/// The searcher: the chunk of `luna.<name>` and its file name, or why not.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)),
/// as the closure `add_searcher` made.
unsafe extern "C-unwind" fn search(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(name) = args.str(1).and_then(|n| n.strip_prefix("luna.")) else {
        // SAFETY: the stack contract of a C function.
        unsafe { push_str(state, "\n\tnot a luna runtime module") };
        return 1;
    };
    // SAFETY: upvalue 1 (the directory or nil) is an acceptable pseudo-index
    // of this closure; its text is copied before `with_str` returns.
    let dir = unsafe { with_str(state, ffi::lua_upvalueindex(1), |dir| dir.map(PathBuf::from)) };
    let known = FILES.iter().any(|(file, _)| *file == name);
    // SAFETY: the stack contract of a C function; `name` is borrowed from an
    // argument slot that load's pushes leave in place.
    let loaded = unsafe { load(state, dir.as_deref(), name) };
    if loaded.is_ok() {
        // SAFETY: the stack contract of a C function.
        unsafe { push_str(state, &format!("runtime_lua/{name}.lua")) };
        return 2;
    }
    drop(dir);
    if known {
        // A compile error in a runtime module is an error, not a miss.
        // SAFETY: the error message is on top; nothing with a destructor is live.
        unsafe { ffi::lua_error(state) }
    }
    // SAFETY: the stack contract of a C function.
    unsafe { ffi::lua_pushstring(state, c"\n\tno luna runtime module of that name".as_ptr()) };
    1
}
