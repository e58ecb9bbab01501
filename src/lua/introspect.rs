//! What a process can tell about itself: manager counters, process-wide
//! figures and open connections (for scripts, metrics and the console).

use std::ffi::c_int;
use std::time::Instant;

use mlua::ffi::{self, lua_State};

use super::host::with_host;
use super::raw::{push_fail, push_str, set_raw_field};
use super::sockets::manager_index;
use crate::net::{Manager, NetError};

/// Sets `t[name] = value` on the table on top.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a table on top.
unsafe fn set_number(state: *mut lua_State, name: &str, value: u64) {
    // SAFETY: a table on top (the caller's promise); key and value are pushed
    // above it and popped by lua_rawset.
    unsafe {
        push_str(state, name);
        ffi::lua_pushinteger(state, value.min(i64::MAX as u64) as i64);
        ffi::lua_rawset(state, -3);
    }
}

/// Pushes a table of counters.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn push_counters(state: *mut lua_State, manager: &[(&'static str, u64)]) {
    // SAFETY: the contract; the new table stays on top while it is filled.
    unsafe {
        ffi::lua_createtable(state, 0, manager.len() as c_int);
        for &(name, value) in manager {
            set_number(state, name, value);
        }
    }
}

fn counters_of(mgr: u32) -> Option<[(&'static str, u64); 22]> {
    with_host(|host| host.net.managers().get(mgr as usize).map(Manager::counters))
}

/// `mgr.stats()`: the manager's counters (forwarded, forward_failed, open...).
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)), as a manager method.
pub unsafe extern "C-unwind" fn mgr_stats(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called this manager method.
    let mgr = unsafe { manager_index(state) };
    let Some(counters) = counters_of(mgr) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, NetError::InvalidParam) };
    };
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe { push_counters(state, &counters) };
    1
}

fn started() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Descriptors this process has open (Linux: /proc/self/fd), 0 when unknown.
fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// `luna.process_stats()`: { uptime_ms, timers, open_files, log_dropped,
/// managers = { [index] = counters } } (indexes from 1).
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn process_stats(state: *mut lua_State) -> c_int {
    let (managers, timers) = with_host(|host| {
        let managers: Vec<_> = host.net.managers().iter().map(Manager::counters).collect();
        (managers, host.timers.len())
    });
    // SAFETY: the stack contract of a C function, with no host borrow; the
    // result and one inner table at a time are on top while they are filled.
    unsafe {
        ffi::lua_createtable(state, 0, 6);
        set_number(state, "uptime_ms", started().elapsed().as_millis() as u64);
        set_number(state, "timers", timers as u64);
        set_number(state, "open_files", open_files());
        set_number(state, "log_dropped", crate::log::dropped());
        ffi::lua_createtable(state, managers.len() as c_int, 0);
        for (at, counters) in managers.iter().enumerate() {
            push_counters(state, counters);
            ffi::lua_rawseti(state, -2, at as i64 + 1);
        }
        set_raw_field(state, -2, c"managers");
    }
    1
}

/// `luna.connections()`: a list of { token, mgr, state, ip, port, bytes_in,
/// bytes_out, unsent, age_ms } for every open listener and stream.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
pub unsafe extern "C-unwind" fn connections(state: *mut lua_State) -> c_int {
    let list = with_host(|host| host.net.connections());
    // SAFETY: the stack contract of a C function, with no host borrow; the
    // list and one entry at a time are on top while they are filled.
    unsafe {
        ffi::lua_createtable(state, list.len() as c_int, 0);
        for (at, info) in list.iter().enumerate() {
            ffi::lua_createtable(state, 0, 9);
            set_number(state, "token", info.token);
            set_number(state, "mgr", u64::from(info.mgr) + 1);
            push_str(state, info.state);
            set_raw_field(state, -2, c"state");
            push_str(state, &info.ip);
            set_raw_field(state, -2, c"ip");
            set_number(state, "port", u64::from(info.port));
            set_number(state, "bytes_in", info.bytes_in);
            set_number(state, "bytes_out", info.bytes_out);
            set_number(state, "unsent", info.unsent as u64);
            set_number(state, "age_ms", info.age.as_millis() as u64);
            ffi::lua_rawseti(state, -2, at as i64 + 1);
        }
    }
    1
}

/// Starts the uptime clock (called at boot).
pub fn start_clock() {
    let _ = started();
}
