//! The event loop: one pass, and the flush before exit.
//!
//! A pass: wait on the poller (bounded by the next deadline) -> handle every
//! ready socket (accept, connect, read, whose input `dispatch` hands to the
//! scripts) -> internal deadlines -> script timers -> quit signal -> settled
//! file changes -> flush every dirty stream.

use std::time::{Duration, Instant};

use mlua::ffi::{self, lua_State};

use super::calls;
use super::dispatch::{dispatch_notices, push_hook, read_and_dispatch};
use super::host::{self, refs, with_host};
use super::raw::{pcall_logged, push_ref, push_str, raise};
use crate::log;
use crate::net::{EventAction, Readiness};

/// Runs one pass; raises a Lua error when called from inside a pass.
///
/// # Safety
/// The [stack contract](super::raw#safety), from a C function (a nested
/// call raises a Lua error).
pub unsafe fn run_pass_or_raise(state: *mut lua_State, timeout: Option<Duration>) -> usize {
    if !host::enter_pass() {
        // SAFETY: the contract; nothing with a destructor is live here.
        unsafe {
            raise(
                state,
                c"mgr.wait/luna.wait cannot run inside a callback: the loop is already running",
            )
        };
    }
    // SAFETY: the caller's contract, passed on.
    let handled = unsafe { run_pass(state, timeout) };
    host::leave_pass();
    handled
}

/// One pass (the module documentation lists its steps); returns how many
/// events, timers, signals and reloads it handled.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn run_pass(state: *mut lua_State, timeout: Option<Duration>) -> usize {
    let ready = poll(timeout);
    let mut handled = ready.len();
    // SAFETY: the caller's contract, passed on; every callee leaves the
    // stack as it found it, and no host borrow spans a call.
    unsafe {
        for &readiness in &ready {
            let action = with_host(|host| host.net.handle_event(readiness));
            dispatch_notices(state);
            if let EventAction::Read(token) = action {
                read_and_dispatch(state, token);
                dispatch_notices(state);
            }
        }
        with_host(|host| host.ready = ready);
        for token in with_host(|host| host.net.take_again()) {
            read_and_dispatch(state, token);
            dispatch_notices(state);
        }
        with_host(|host| host.net.run_timers(Instant::now()));
        dispatch_notices(state);
        handled += calls::time_out_calls(state);
        handled += run_timers(state);
        handled += deliver_quit_signal(state);
        handled += reload_changed_files(state);
        with_host(|host| {
            // Callers of tracked calls whose callee left this pass hear it in this flush.
            host.net.report_lost_calls();
            host.net.flush_dirty();
        });
        dispatch_notices(state);
    }
    handled
}

/// Waits for readiness until the earliest of `timeout` and every deadline.
fn poll(timeout: Option<Duration>) -> Vec<Readiness> {
    with_host(|host| {
        let now = Instant::now();
        let mut deadline = timeout.map(|t| now + t);
        let deadlines = [
            host.net.next_deadline(),
            host.timers.next_deadline(),
            host.calls.next_deadline(),
            host.watcher.as_ref().and_then(|w| w.next_deadline()),
        ];
        for due in deadlines.into_iter().flatten() {
            deadline = Some(deadline.map_or(due, |d| d.min(due)));
        }
        let busy = host.net.has_immediate_work() || host.quit.is_pending();
        let wait = if busy {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(now))
        };
        let mut ready = std::mem::take(&mut host.ready);
        ready.clear();
        if let Err(error) = host.poller.wait(wait, &mut ready) {
            log::error(&format!("poller wait failed: {error}"));
        }
        if let Some(watcher) = host.watcher.as_mut() {
            watcher.collect(Instant::now());
        }
        ready
    })
}

/// Runs the script timers that are due; returns how many ran.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn run_timers(state: *mut lua_State) -> usize {
    let now = Instant::now();
    let mut due = Vec::new();
    with_host(|host| {
        while let Some(timer) = host.timers.pop_due(now) {
            due.push(timer);
        }
    });
    for &(id, repeating) in &due {
        // SAFETY: the contract; the timers table and the callback go above
        // `top`, which is restored.
        unsafe {
            let top = ffi::lua_gettop(state);
            push_ref(state, refs().timers);
            // A timer cancelled by an earlier callback of this batch has no entry.
            if ffi::lua_rawgeti(state, -1, id as i64) != ffi::LUA_TFUNCTION {
                ffi::lua_settop(state, top);
                continue;
            }
            if !repeating {
                ffi::lua_pushnil(state);
                ffi::lua_rawseti(state, -3, id as i64);
            }
            ffi::lua_remove(state, -2);
            pcall_logged(state, 0, &|| format!("timer {id}"));
            ffi::lua_settop(state, top);
        }
    }
    due.len()
}

/// Hands a quit signal to the runtime's hook; exits when there is none.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn deliver_quit_signal(state: *mut lua_State) -> usize {
    let Some(signo) = with_host(|host| host.quit.take()) else {
        return 0;
    };
    // SAFETY: the contract; the hook and its argument are consumed by the call.
    unsafe {
        if !push_hook(state, refs().on_signal) {
            log::warn("no quit-signal hook is installed: exiting");
            log::flush(log::EXIT_FLUSH_LIMIT);
            std::process::exit(128 + signo);
        }
        ffi::lua_pushinteger(state, i64::from(signo));
        pcall_logged(state, 1, &|| "on_quit_signal".into());
    }
    1
}

/// Hands every settled file change to the runtime's reload hook.
///
/// # Safety
/// The [stack contract](super::raw#safety).
unsafe fn reload_changed_files(state: *mut lua_State) -> usize {
    let changed = with_host(|host| {
        host.watcher
            .as_mut()
            .map(|w| w.take_due(Instant::now()))
            .unwrap_or_default()
    });
    for path in &changed {
        // SAFETY: the contract; the hook and its argument are consumed by the call.
        unsafe {
            if !push_hook(state, refs().on_file_changed) {
                continue;
            }
            push_str(state, &path.to_string_lossy());
            pcall_logged(state, 1, &|| format!("reload of {}", path.display()));
        }
    }
    changed.len()
}

/// Flushes every stream's output before exit, waiting at most `limit`.
/// Returns true when everything was written and acknowledged.
pub fn flush_before_exit(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let pending = with_host(|host| {
            host.net.mark_all_dirty();
            host.net.flush_dirty();
            host.net.has_unsent_output()
        });
        let now = Instant::now();
        if !pending || now >= deadline {
            if pending {
                log::warn("quitting with output still unsent: the flush deadline passed");
            }
            return !pending && with_host(|host| host.net.wait_until_acknowledged(deadline));
        }
        let ready = poll(Some(deadline - now));
        with_host(|host| {
            for &readiness in &ready {
                // Only writes and connects matter now; input is not dispatched.
                let _ = host.net.handle_event(readiness);
            }
            host.ready = ready;
        });
    }
}
