//! The functions of the `luna` core module that are not socket methods.

use std::ffi::c_int;
use std::path::Path;
use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_State};

use super::event_loop;
use super::host::{self, refs, with_host};
use super::raw::{
    Args, make_ref, push_fail, push_fail_detail, push_ref, push_str, raw_field, set_functions, set_raw_field, traceback,
};
use super::sockets::{create_socket_mgr, hash_key_arg, timeout_arg};
use crate::log::{self, Level};
use crate::net::NetError;
use crate::route::service_id;

/// Adds the core functions to the table on top of the stack.
///
/// # Safety
/// The [stack contract](super::raw#safety), with a table on top.
pub unsafe fn register(state: *mut lua_State) {
    // SAFETY: a table on top (the caller's promise); each helper leaves it there.
    unsafe {
        set_functions(
            state,
            &[
                (c"get_time_ms", get_time_ms),
                (c"get_time_ns", get_time_ns),
                (c"wait", wait),
                (c"flush", flush),
                (c"timer_start", timer_start),
                (c"timer_cancel", timer_cancel),
                (c"create_socket_mgr", create_socket_mgr),
                (c"process_stats", super::introspect::process_stats),
                (c"connections", super::introspect::connections),
                (c"service_id", service_id_fn),
                (c"service_group", service_group),
                (c"service_index", service_index),
                (c"service_name", service_name),
                (c"hash_key", hash_key),
                (c"realpath", realpath),
                (c"traceback", traceback),
                (c"_watch", watch),
                (c"_log", log_line),
                (c"_log_enabled", log_enabled),
                (c"_log_set_name", log_set_name),
                (c"_log_dropped", log_dropped),
                (c"_notify", notify),
                (c"_set_hooks", set_hooks),
                (c"_rpc_stats", super::calls::rpc_stats),
                (c"_secret_equals", secret_equals),
                (c"_timers", timers_list),
            ],
        );
        push_str(state, env!("CARGO_PKG_VERSION"));
        set_raw_field(state, -2, c"version");
    }
}

fn monotonic() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Pushes an integer and returns 1, the end of most functions here.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn return_integer(state: *mut lua_State, value: i64) -> c_int {
    // SAFETY: the contract leaves room for one value.
    unsafe { ffi::lua_pushinteger(state, value) };
    1
}

/// Pushes a boolean and returns 1.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn return_boolean(state: *mut lua_State, value: bool) -> c_int {
    // SAFETY: the contract leaves room for one value.
    unsafe { ffi::lua_pushboolean(state, c_int::from(value)) };
    1
}

/// `luna.get_time_ms()`: monotonic milliseconds.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn get_time_ms(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { return_integer(state, monotonic().as_millis() as i64) }
}

/// `luna.get_time_ns()`: monotonic nanoseconds.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn get_time_ns(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { return_integer(state, monotonic().as_nanos() as i64) }
}

/// `luna.wait([ms])`: one loop pass; without `ms` it waits for the next event or timer.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn wait(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before the pass runs callbacks.
    let timeout = timeout_arg(&unsafe { Args::new(state) }, 1);
    // SAFETY: the stack contract of a C function, with no host borrow.
    unsafe {
        let handled = event_loop::run_pass_or_raise(state, timeout);
        return_integer(state, handled as i64)
    }
}

/// How long `luna.flush()` waits when given no limit.
const DEFAULT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// `luna.flush([ms])`: writes every stream's pending output, waiting at most `ms`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn flush(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    let limit = timeout_arg(&unsafe { Args::new(state) }, 1).unwrap_or(DEFAULT_FLUSH_LIMIT);
    let done = event_loop::flush_before_exit(limit);
    // SAFETY: the stack contract of a C function.
    unsafe { return_boolean(state, done) }
}

/// `luna.timer_start(delay_ms, period_ms|nil, fn)` -> id.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn timer_start(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let delay = timeout_arg(&args, 1);
    let period = timeout_arg(&args, 2).filter(|p| !p.is_zero());
    // SAFETY: the stack contract of a C function; argument 3 is checked to
    // be a function before it is copied into the timers table.
    unsafe {
        if args.kind(3) != ffi::LUA_TFUNCTION {
            return push_fail(state, "timer_start: a function is required");
        }
        let Some(delay) = delay else {
            return push_fail(state, "timer_start: the delay must be a number >= 0");
        };
        let id = with_host(|host| host.timers.add_at(Instant::now() + delay, period, period.is_some()));
        push_ref(state, refs().timers);
        ffi::lua_pushvalue(state, 3);
        ffi::lua_rawseti(state, -2, id as i64);
        ffi::lua_pop(state, 1);
        return_integer(state, id as i64)
    }
}

/// `luna.timer_cancel(id)` -> true if the timer was pending.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn timer_cancel(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let id = unsafe { Args::new(state) }.integer(1);
    // SAFETY: the stack contract of a C function; the timers table pushed is popped.
    unsafe {
        let Some(id) = id else {
            return push_fail(state, "timer_cancel: a timer id is required");
        };
        let was_pending = with_host(|host| host.timers.cancel(id as u64).is_some());
        push_ref(state, refs().timers);
        ffi::lua_pushnil(state);
        ffi::lua_rawseti(state, -2, id);
        ffi::lua_pop(state, 1);
        return_boolean(state, was_pending)
    }
}

/// `luna.service_id(group, index)` or `luna.service_id("g.i")`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn service_id_fn(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let id = match (args.str(1), args.integer(1), args.integer(2)) {
        (Some(text), _, _) => service_id::parse(text),
        (None, Some(group), Some(index)) => service_id::from_parts(group, index),
        _ => None,
    };
    // SAFETY: the stack contract of a C function.
    unsafe {
        match id {
            Some(id) => return_integer(state, i64::from(id)),
            None => {
                let why = "want luna.service_id(\"group.index\") or luna.service_id(group 1-255, index 1-65535)";
                push_fail_detail(state, NetError::InvalidParam, why)
            }
        }
    }
}

/// What the argument of service_group/index/name must be.
const ID_EXPECTED: &str = "the argument #1 must be a service id (an integer)";

/// Pushes `part(id)` of the service id in argument 1, or the error.
///
/// # Safety
/// The stack contract of a running C function.
unsafe fn id_part(state: *mut lua_State, part: impl FnOnce(u32) -> i64) -> c_int {
    // SAFETY: a running C function (the caller's promise).
    let id = unsafe { Args::new(state) }
        .integer(1)
        .and_then(|id| u32::try_from(id).ok());
    // SAFETY: the stack contract of a C function.
    unsafe {
        match id {
            Some(id) => return_integer(state, part(id)),
            None => push_fail_detail(state, NetError::InvalidParam, ID_EXPECTED),
        }
    }
}

/// `luna.service_group(id)`: the group of a service id.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn service_group(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { id_part(state, |id| i64::from(service_id::group(id))) }
}

/// `luna.service_index(id)`: the index of a service id.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn service_index(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { id_part(state, |id| i64::from(service_id::index(id))) }
}

/// `luna.service_name(id)`: `"group.index"`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn service_name(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let id = unsafe { Args::new(state) }
        .integer(1)
        .and_then(|id| u32::try_from(id).ok());
    // SAFETY: the stack contract of a C function.
    unsafe {
        match id {
            Some(id) => {
                push_str(state, &service_id::name(id));
                1
            }
            None => push_fail_detail(state, NetError::InvalidParam, ID_EXPECTED),
        }
    }
}

/// `luna.hash_key(key)`: the unsigned hash `forward_hash` uses, as an integer.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn hash_key(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let hash = hash_key_arg(&unsafe { Args::new(state) }, 1);
    // SAFETY: the stack contract of a C function.
    unsafe {
        match hash {
            Some(hash) => return_integer(state, hash as i64),
            None => {
                let why = "key (argument #1) must be an integer or a string";
                push_fail_detail(state, NetError::InvalidParam, why)
            }
        }
    }
}

/// `luna.realpath(path)` -> the absolute canonical path of an existing file, or nil, err.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn realpath(state: *mut lua_State) -> c_int {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: Lua called it; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(path) = args.bytes(1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, "realpath: a path is required") };
    };
    // Any bytes are a Unix path.
    let real = std::fs::canonicalize(Path::new(std::ffi::OsStr::from_bytes(path)));
    // SAFETY: the stack contract of a C function.
    unsafe {
        match real {
            Ok(real) if real.is_file() => push_str(state, &real.to_string_lossy()),
            Ok(_) => return push_fail(state, "not a file"),
            Err(error) => return push_fail(state, error.to_string()),
        }
    }
    1
}

/// `luna._watch(path)`: reload hook notifications for this file from now on.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn watch(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(path) = args.str(1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, "watch: a path is required") };
    };
    let result = with_host(|host| match host.watcher.as_mut() {
        Some(watcher) => watcher.watch(Path::new(path)).map_err(|e| e.to_string()),
        None => Err("file watching is unavailable".to_string()),
    });
    // SAFETY: the stack contract of a C function; the host borrow has ended.
    unsafe {
        if let Err(error) = result {
            log::warn(&format!("cannot watch {path} for hot reload: {error}"));
            return push_fail(state, error);
        }
        return_boolean(state, true)
    }
}

fn level_arg(args: &Args) -> Level {
    args.str(1).and_then(Level::parse).unwrap_or(Level::Info)
}

/// `luna._log(level, message)`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn log_line(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let level = level_arg(&args);
    if log::enabled(level) {
        let message = args.bytes(2).map(String::from_utf8_lossy).unwrap_or_default();
        log::write(level, &message);
    }
    0
}

/// `luna._log_enabled(level)`.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn log_enabled(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before the push.
    let enabled = log::enabled(level_arg(&unsafe { Args::new(state) }));
    // SAFETY: the stack contract of a C function.
    unsafe { return_boolean(state, enabled) }
}

/// `luna._log_set_name(name|nil)`: the name shown on every log line.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn log_set_name(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    match args.bytes(1) {
        Some(name) => log::set_name(Some(&String::from_utf8_lossy(name))),
        None if args.is_none_or_nil(1) => log::set_name(None),
        // SAFETY: the stack contract of a C function.
        None => return unsafe { push_fail(state, "log.set_name: a string or nil is required") },
    }
    // SAFETY: the stack contract of a C function.
    unsafe { return_boolean(state, true) }
}

/// `luna._log_dropped()`: log lines dropped (queue full) or lost so far.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn log_dropped(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it.
    unsafe { return_integer(state, log::dropped() as i64) }
}

/// `luna._notify(state)`: sends `state` (e.g. "READY=1", "STOPPING=1") to the
/// service manager at `$NOTIFY_SOCKET`, with `MAINPID` along with READY=1.
/// Returns true when sent, false when NOTIFY_SOCKET is not set, nil, err on failure.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn notify(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` lives until it returns.
    let args = unsafe { Args::new(state) };
    let Some(text) = args.str(1) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, "_notify: a state string is required") };
    };
    if std::env::var_os("NOTIFY_SOCKET").is_none_or(|v| v.is_empty()) {
        // SAFETY: the stack contract of a C function.
        return unsafe { return_boolean(state, false) };
    }
    let main_pid = sd_notify::NotifyState::MainPid(std::process::id());
    let mut states = vec![sd_notify::NotifyState::Custom(text)];
    if text == "READY=1" {
        states.push(main_pid);
    }
    if let Err(error) = sd_notify::notify(&states) {
        let message = format!("cannot notify the service manager of {text} (NOTIFY_SOCKET): {error}");
        log::warn(&message);
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, &message) };
    }
    // SAFETY: the stack contract of a C function.
    unsafe { return_boolean(state, true) }
}

/// `luna._set_hooks{on_signal = f, on_file_changed = f, on_stream_closed = f,
/// traces = t, rpc_worker = f, rpc_parked = v}`: the runtime's entry points
/// and the values the core shares with it; fields left out keep their current value.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn set_hooks(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    if unsafe { Args::new(state) }.kind(1) != ffi::LUA_TTABLE {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, "_set_hooks: a table is required") };
    }
    let mut slots = refs();
    for (name, slot) in [
        (c"on_signal", &mut slots.on_signal),
        (c"on_file_changed", &mut slots.on_file_changed),
        (c"on_stream_closed", &mut slots.on_stream_closed),
        (c"traces", &mut slots.traces),
        (c"rpc_worker", &mut slots.rpc_worker),
        (c"rpc_parked", &mut slots.rpc_parked),
    ] {
        // SAFETY: a table at argument 1; each field pushed is popped, or
        // popped into a registry slot.
        unsafe {
            if raw_field(state, 1, name) == ffi::LUA_TNIL {
                ffi::lua_pop(state, 1);
            } else {
                *slot = make_ref(state);
            }
        }
    }
    host::set_refs(slots);
    0
}

/// `luna._secret_equals(a, b)`: true when the two strings are equal, compared
/// in constant time (HMACs of both, checked with `verify_slice`), so the time
/// taken tells an attacker nothing about how much of a guess was right.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn secret_equals(state: *mut lua_State) -> c_int {
    use hmac::{KeyInit, Mac};
    type HmacSha256 = hmac::Hmac<sha2::Sha256>;
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let args = unsafe { Args::new(state) };
    let (Some(a), Some(b)) = (args.bytes(1), args.bytes(2)) else {
        // SAFETY: the stack contract of a C function.
        return unsafe { push_fail(state, "_secret_equals: two strings are required") };
    };
    let tag = |bytes: &[u8]| {
        let mut mac =
            <HmacSha256 as KeyInit>::new_from_slice(b"luna secret comparison").expect("HMAC takes keys of any length");
        mac.update(bytes);
        mac
    };
    let expected = tag(b).finalize().into_bytes();
    let equal = tag(a).verify_slice(&expected).is_ok();
    // SAFETY: the stack contract of a C function.
    unsafe { return_boolean(state, equal) }
}

/// `luna._timers([limit])` -> list of { id, due_ms, period_ms, fn } sorted by
/// deadline (at most `limit`, default 1000), and the number of live timers.
///
/// # Safety
/// A C function: Lua calls it (the [stack contract](super::raw#safety)).
unsafe extern "C-unwind" fn timers_list(state: *mut lua_State) -> c_int {
    // SAFETY: Lua called it; `args` is dropped before it returns.
    let limit = unsafe { Args::new(state) }
        .integer(1)
        .filter(|&n| n >= 0)
        .unwrap_or(1000) as usize;
    let now = Instant::now();
    let (mut list, total) = with_host(|host| (host.timers.iter().collect::<Vec<_>>(), host.timers.len()));
    list.sort_by_key(|&(id, deadline, _)| (deadline, id));
    list.truncate(limit);
    // SAFETY: the stack contract of a C function, with no host borrow; at
    // most four values (list, timers table, entry, field) are on the stack
    // above the arguments at once.
    unsafe {
        ffi::lua_createtable(state, list.len() as c_int, 0);
        push_ref(state, refs().timers);
        for (at, (id, deadline, period)) in list.iter().enumerate() {
            ffi::lua_createtable(state, 0, 4);
            ffi::lua_pushinteger(state, *id as i64);
            set_raw_field(state, -2, c"id");
            let due = deadline
                .saturating_duration_since(now)
                .as_millis()
                .min(i64::MAX as u128) as i64;
            ffi::lua_pushinteger(state, due);
            set_raw_field(state, -2, c"due_ms");
            if let Some(period) = period {
                ffi::lua_pushinteger(state, period.as_millis().min(i64::MAX as u128) as i64);
                set_raw_field(state, -2, c"period_ms");
            }
            ffi::lua_rawgeti(state, -2, *id as i64);
            set_raw_field(state, -2, c"fn");
            ffi::lua_rawseti(state, -3, at as i64 + 1);
        }
        ffi::lua_pop(state, 1);
        ffi::lua_pushinteger(state, total as i64);
    }
    2
}
