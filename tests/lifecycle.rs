//! The process life cycle (README "A service process"): entry, loop, signals, errors.

mod common;

use std::time::Duration;

use common::{Dir, Luna, run_to_end, script_arg, test_script};

#[test]
fn lifecycle_order_with_on_loop() {
    let script = test_script("lifecycle/on_loop_order.lua");
    let mut luna = Luna::start(&script, &["x", "y"]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["start\tx\ty", "loop 1", "loop 2", "loop 3", "stop"]);
}

#[test]
fn runtime_drives_the_loop_without_on_loop() {
    let script = test_script("lifecycle/runtime_loop.lua");
    let mut luna = Luna::start(&script, &[]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["start", "timer", "stop"]);
}

#[test]
fn args_and_module_aliases() {
    let script = test_script("lifecycle/args_aliases.lua");
    let mut luna = Luna::start(&script, &["one", "--two"]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["args\ttrue\tone\t--two\t2", "aliases\ttrue\ttrue"]);
}

#[test]
fn sigterm_while_idle_stops_cleanly() {
    let script = test_script("lifecycle/idle.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGTERM);
    let status = luna.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", luna.stderr());
    luna.expect("stopped");
}

#[test]
fn sigint_stops_cleanly() {
    let script = test_script("lifecycle/idle.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGINT);
    assert_eq!(luna.wait_exit().code(), Some(0));
    luna.expect("stopped");
}

#[test]
fn sigterm_while_busy_stops_cleanly() {
    let script = test_script("lifecycle/busy.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("busy");
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(0));
    luna.expect("stopped");
}

#[test]
fn quit_signal_handler_in_entry_environment() {
    let script = test_script("lifecycle/draining.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGTERM);
    luna.expect("draining\t15");
    assert_eq!(luna.wait_exit().code(), Some(0));
    luna.expect("stopped");
}

#[test]
fn second_signal_while_quitting_exits_at_once() {
    let script = test_script("lifecycle/drain_forever.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGTERM);
    luna.expect("draining forever");
    // Not a wait: nothing may happen in this window (no exit on the first signal).
    assert!(
        luna.wait_exit_within(Duration::from_millis(300)).is_none(),
        "the first signal must not exit"
    );
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(143));
}

#[test]
fn second_signal_exits_even_when_the_main_thread_is_stuck() {
    let script = test_script("lifecycle/stuck.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("spinning");
    // The stuck process shows no sign of the first signal, and two signals
    // sent back to back may merge into one (as Unix signals do): signal
    // until it exits.
    let status = common::eventually("an exit after repeated SIGINTs", || {
        luna.signal(libc::SIGINT);
        luna.wait_exit_within(Duration::from_millis(100))
    });
    assert_eq!(status.code(), Some(130), "{}", luna.stderr());
    assert!(
        luna.stderr().contains("second SIGINT while quitting"),
        "{}",
        luna.stderr()
    );
}

#[test]
fn idle_process_uses_no_cpu() {
    let script = test_script("lifecycle/idle_listener.lua");
    let luna = {
        let mut luna = Luna::start(&script, &[]);
        luna.expect("ready");
        luna
    };
    let before = luna.cpu_time();
    // Not a wait: the window over which the CPU time is measured.
    std::thread::sleep(Duration::from_secs(2));
    let used = luna.cpu_time() - before;
    assert!(
        used < Duration::from_millis(150),
        "idle process used {used:?} of CPU in 2 s"
    );
}

#[test]
fn error_in_entry_top_level_exits_1_with_traceback() {
    let dir = Dir::new();
    let script = script_arg("lifecycle/top_level_error.lua");
    let (code, _, stderr) = run_to_end(dir.dir.path(), &[&script]);
    assert_eq!(code, 1);
    assert!(stderr.contains("top_level_error.lua:1: boom at start"), "{stderr}");
    assert!(stderr.contains("stack traceback"), "{stderr}");
}

#[test]
fn error_in_on_start_exits_1() {
    let dir = Dir::new();
    let script = script_arg("lifecycle/start_error.lua");
    let (code, _, stderr) = run_to_end(dir.dir.path(), &[&script]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bad start") && stderr.contains("stack traceback"),
        "{stderr}"
    );
}

#[test]
fn missing_entry_exits_1() {
    let dir = Dir::new();
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["nope.lua"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nope.lua"), "{stderr}");
}

#[test]
fn callback_errors_are_logged_and_the_process_goes_on() {
    let script = test_script("lifecycle/callback_errors.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("still alive");
    assert_eq!(luna.wait_exit().code(), Some(0));
    let stderr = luna.stderr();
    assert!(
        stderr.contains("timer exploded") && stderr.contains("stack traceback"),
        "{stderr}"
    );
    assert!(stderr.contains("coroutine exploded"), "{stderr}");
}

#[test]
fn on_loop_errors_are_logged_and_looping_continues() {
    let script = test_script("lifecycle/on_loop_errors.lua");
    let mut luna = Luna::start(&script, &[]);
    luna.expect("third pass");
    assert_eq!(luna.wait_exit().code(), Some(0));
    assert!(luna.stderr().contains("loop failure 2"), "{}", luna.stderr());
}

#[test]
fn timers_repeat_cancel_and_sleep() {
    let script = test_script("lifecycle/timers.lua");
    let mut luna = Luna::start(&script, &[]);
    assert_eq!(luna.wait_exit().code(), Some(0));
    let out = luna.stdout();
    assert!(
        out.contains(&"sleep outside coroutine\tfalse\ttrue".to_string()),
        "{out:?}"
    );
    assert!(out.contains(&"interval x3".to_string()), "{out:?}");
    assert!(out.contains(&"slept\tco\ttrue".to_string()), "{out:?}");
    assert!(!out.iter().any(|l| l.contains("must not fire")), "{out:?}");
}

#[test]
fn clocks_and_logging() {
    let dir = Dir::new();
    let script = script_arg("lifecycle/clocks_logging.lua");
    let mut luna = Luna::start_in(dir.dir.path(), &[&script]);
    assert!(luna.wait_exit().success());
    luna.expect("clock\tinteger\tinteger\ttrue");
    luna.expect_err("INFO  info line");
    luna.expect_err("WARN  warn line 42");
    luna.expect_err("ERROR error line");
    assert!(!luna.stderr().contains("hidden debug"));

    let mut quiet = Luna::start_in(dir.dir.path(), &["--log-level", "error", &script]);
    assert!(quiet.wait_exit().success());
    quiet.expect_err("error line");
    assert!(!quiet.stderr().contains("info line"), "{}", quiet.stderr());
}
