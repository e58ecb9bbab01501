//! The process life cycle (SPEC section 1): entry, loop, signals, errors.

mod common;

use std::time::Duration;

use common::{Dir, Luna, run_to_end};

#[test]
fn lifecycle_order_with_on_loop() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        local passes = 0
        local mgr = luna.create_socket_mgr(10)
        function on_start(a, b) print("start", a, b) end
        function on_loop(now)
            assert(math.type(now) == "integer")
            passes = passes + 1
            print("loop " .. passes)
            mgr.wait(5)
            if passes == 3 then luna_quit_flag = true end
        end
        function on_stop() print("stop") end
        "#,
    );
    let mut luna = Luna::start(&script, &["x", "y"]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["start\tx\ty", "loop 1", "loop 2", "loop 3", "stop"]);
}

#[test]
fn runtime_drives_the_loop_without_on_loop() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        function on_start()
            print("start")
            luna.timer(30, function() print("timer"); luna_quit_flag = true end)
        end
        function on_stop() print("stop") end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["start", "timer", "stop"]);
}

#[test]
fn args_and_module_aliases() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        print("args", luna.args[0]:match("main%.lua$") ~= nil, luna.args[1], luna.args[2], #luna.args)
        print("aliases", require("lbus") == luna, require("luna") == luna)
        luna_quit_flag = true
        "#,
    );
    let mut luna = Luna::start(&script, &["one", "--two"]);
    assert!(luna.wait_exit().success());
    assert_eq!(luna.stdout(), vec!["args\ttrue\tone\t--two\t2", "aliases\ttrue\ttrue"]);
}

const IDLE_SCRIPT: &str = r#"
    function on_start() print("ready") end
    function on_stop() print("stopped") end
"#;

#[test]
fn sigterm_while_idle_stops_cleanly() {
    let dir = Dir::new();
    let script = dir.write("main.lua", IDLE_SCRIPT);
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGTERM);
    let status = luna.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", luna.stderr());
    luna.expect("stopped");
}

#[test]
fn sigint_stops_cleanly() {
    let dir = Dir::new();
    let script = dir.write("main.lua", IDLE_SCRIPT);
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGINT);
    assert_eq!(luna.wait_exit().code(), Some(0));
    luna.expect("stopped");
}

#[test]
fn sigterm_while_busy_stops_cleanly() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        local spins = 0
        function on_loop()
            -- Busy: burn CPU for a while on every pass.
            local until_t = os.clock() + 0.05
            while os.clock() < until_t do end
            spins = spins + 1
            if spins == 2 then print("busy") end
            mgr.wait(0)
        end
        function on_stop() print("stopped") end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    luna.expect("busy");
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(0));
    luna.expect("stopped");
}

#[test]
fn quit_signal_handler_in_entry_environment() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        function on_start() print("ready") end
        function on_quit_signal(signo)
            print("draining", signo)
            luna.timer(20, function() luna_quit_flag = true end)
        end
        function on_stop() print("stopped") end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGTERM);
    luna.expect("draining\t15");
    assert_eq!(luna.wait_exit().code(), Some(0));
    luna.expect("stopped");
}

#[test]
fn second_signal_while_quitting_exits_at_once() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        function on_start() print("ready") end
        function on_quit_signal(signo) print("draining forever") end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    luna.signal(libc::SIGTERM);
    luna.expect("draining forever");
    assert!(
        luna.wait_exit_within(Duration::from_millis(300)).is_none(),
        "the first signal must not exit"
    );
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(143));
}

#[test]
fn second_signal_exits_even_when_the_main_thread_is_stuck() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        function on_start()
            print("ready")
            luna.timer(10, function() while true do end end)
        end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    luna.expect("ready");
    std::thread::sleep(Duration::from_millis(100));
    luna.signal(libc::SIGINT);
    // Two signals sent back to back may merge into one, as Unix signals do.
    std::thread::sleep(Duration::from_millis(100));
    luna.signal(libc::SIGINT);
    assert_eq!(luna.wait_exit().code(), Some(130));
}

#[test]
fn idle_process_uses_no_cpu() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        local mgr = luna.create_socket_mgr(10)
        listener = mgr.listen("127.0.0.1", 0)
        luna.interval(500, function() end)
        function on_start() print("ready") end
        "#,
    );
    let luna = {
        let mut luna = Luna::start(&script, &[]);
        luna.expect("ready");
        luna
    };
    let before = luna.cpu_time();
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
    dir.write(
        "main.lua",
        "local function inner() error('boom at start') end\ninner()\n",
    );
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["main.lua"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("main.lua:1: boom at start"), "{stderr}");
    assert!(stderr.contains("stack traceback"), "{stderr}");
}

#[test]
fn error_in_on_start_exits_1() {
    let dir = Dir::new();
    dir.write("main.lua", "function on_start() error('bad start') end\n");
    let (code, _, stderr) = run_to_end(dir.dir.path(), &["main.lua"]);
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
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        local ticks = 0
        function on_start()
            luna.timer(5, function() error("timer exploded") end)
            luna.go(function() luna.sleep(5); error("coroutine exploded") end)
            luna.interval(10, function()
                ticks = ticks + 1
                if ticks == 5 then print("still alive"); luna_quit_flag = true end
            end)
        end
        "#,
    );
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
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        local passes = 0
        function on_loop()
            passes = passes + 1
            if passes == 3 then print("third pass"); luna_quit_flag = true end
            error("loop failure " .. passes)
        end
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    luna.expect("third pass");
    assert_eq!(luna.wait_exit().code(), Some(0));
    assert!(luna.stderr().contains("loop failure 2"), "{}", luna.stderr());
}

#[test]
fn timers_repeat_cancel_and_sleep() {
    let dir = Dir::new();
    let script = dir.write(
        "main.lua",
        r#"
        function on_start()
            local fired = 0
            local cancelled = luna.timer(20, function() print("must not fire") end)
            assert(cancelled.cancel() == true)
            assert(cancelled.cancel() == false)
            local every
            every = luna.interval(5, function()
                fired = fired + 1
                if fired == 3 then every.cancel(); print("interval x3") end
            end)
            luna.go(function(a)
                local t0 = luna.get_time_ms()
                luna.sleep(30)
                print("slept", a, luna.get_time_ms() - t0 >= 29)
                luna.timer(30, function() luna_quit_flag = true end)
            end, "co")
            local ok, err = pcall(luna.sleep, 1)
            print("sleep outside coroutine", ok, err:match("inside a coroutine") ~= nil)
        end
        "#,
    );
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
    let script = dir.write(
        "main.lua",
        r#"
        local ms, ns = luna.get_time_ms(), luna.get_time_ns()
        print("clock", math.type(ms), math.type(ns), ns // 1000000 - ms <= 1)
        luna.log.debug("hidden debug")
        luna.log.info("info line")
        luna.log("warn", "warn line", 42)
        luna.log.error("error line")
        luna_quit_flag = true
        "#,
    );
    let mut luna = Luna::start(&script, &[]);
    assert!(luna.wait_exit().success());
    luna.expect("clock\tinteger\tinteger\ttrue");
    luna.expect_err("INFO  info line");
    luna.expect_err("WARN  warn line 42");
    luna.expect_err("ERROR error line");
    assert!(!luna.stderr().contains("hidden debug"));

    let mut quiet = common::Luna::start_in(dir.dir.path(), &["--log-level", "error", "main.lua"]);
    assert!(quiet.wait_exit().success());
    quiet.expect_err("error line");
    assert!(!quiet.stderr().contains("info line"), "{}", quiet.stderr());
}
