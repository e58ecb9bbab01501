//! The runtime Lua of `runtime_lua/`, compiled in; `--runtime DIR` reads it
//! from disk instead, so users can change the runtime without rebuilding.
//! `require("luna.rpc")` finds `runtime_lua/rpc.lua` either way.

use std::ffi::{CString, c_int};
use std::path::{Path, PathBuf};

use mlua::ffi::{self, lua_State};

use super::raw::{push_str, str_arg};

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
pub unsafe fn load(state: *mut lua_State, dir: Option<&Path>, name: &str) -> Result<(), ()> {
    let on_disk = dir
        .map(|dir| dir.join(format!("{name}.lua")))
        .filter(|path| path.is_file());
    let (source, chunk_name) = match on_disk {
        Some(path) => match std::fs::read(&path) {
            Ok(bytes) => (bytes, format!("@{}", path.display())),
            Err(error) => {
                unsafe { push_str(state, &format!("cannot read {}: {error}", path.display())) };
                return Err(());
            }
        },
        None => match FILES.iter().find(|(file, _)| *file == name) {
            Some((_, source)) => (source.as_bytes().to_vec(), format!("@runtime_lua/{name}.lua")),
            None => {
                unsafe { push_str(state, &format!("no runtime module '{name}'")) };
                return Err(());
            }
        },
    };
    let chunk_name = CString::new(chunk_name).unwrap_or_default();
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
pub unsafe fn add_searcher(state: *mut lua_State, dir: Option<&Path>) {
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

unsafe extern "C-unwind" fn search(state: *mut lua_State) -> c_int {
    unsafe {
        let Some(name) = str_arg(state, 1).and_then(|n| n.strip_prefix("luna.")) else {
            push_str(state, "\n\tnot a luna runtime module");
            return 1;
        };
        let dir = str_arg(state, ffi::lua_upvalueindex(1)).map(PathBuf::from);
        let known = FILES.iter().any(|(file, _)| *file == name);
        let loaded = load(state, dir.as_deref(), name);
        if loaded.is_ok() {
            push_str(state, &format!("runtime_lua/{name}.lua"));
            return 2;
        }
        drop(dir);
        if known {
            // A compile error in a runtime module is an error, not a miss.
            ffi::lua_error(state)
        }
        ffi::lua_pushstring(state, c"\n\tno luna runtime module of that name".as_ptr());
        1
    }
}
