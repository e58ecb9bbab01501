//! Logging, readiness and deployment (issue 13), end to end with the real
//! binary: --log-file with RFC 3339 times and the process name, JSON lines,
//! SIGHUP reopening the file (the logrotate flow) and never stopping the
//! process, a blocked stderr pipe that does not stall the loop, everything
//! written on the way out, --pid-file, sd_notify READY=1/STOPPING=1, and the
//! files of examples/deploy/. Scripts live in tests/scripts/logging/.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{DEADLINE, Dir, Luna, eventually, luna_bin, run_to_end_with, test_script};

fn script(name: &str) -> String {
    test_script(&format!("logging/{name}")).display().to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// True for `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_utc_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 24
        && bytes.iter().enumerate().all(|(at, &b)| match at {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            23 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// Numbers N of the lines containing `<word> N`, in file order.
fn numbers(text: &str, word: &str) -> Vec<u64> {
    let prefix = format!("{word} ");
    text.lines()
        .filter_map(|line| {
            let at = line.find(&prefix)? + prefix.len();
            line[at..].split_whitespace().next()?.parse().ok()
        })
        .collect()
}

#[test]
fn log_file_lines_have_utc_times_levels_and_name() {
    let dir = Dir::new();
    let log = dir.path("service.log");
    std::fs::write(&log, "an earlier line\n").unwrap();
    let (code, _, stderr) = run_to_end_with(
        dir.dir.path(),
        &["--log-file", "service.log", &script("lines.lua"), "svc-7"],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stderr.contains("hello from the log test"),
        "lines went to stderr:\n{stderr}"
    );
    let text = read(&log);
    assert!(
        text.starts_with("an earlier line\n"),
        "the file was not appended to:\n{text}"
    );
    let hello = text
        .lines()
        .find(|l| l.contains("hello from the log test"))
        .expect(&text);
    assert!(is_utc_time(&hello[..24]), "not an RFC 3339 UTC time: {hello}");
    assert_eq!(&hello[24..], " INFO  [svc-7] hello from the log test");
    assert!(text.contains(" WARN  [svc-7] a \"quoted\" line\twith a tab\nand a second line\n"));
    assert!(text.contains(" ERROR [svc-7] an error line\n"), "{text}");
    assert!(!text.contains("hidden debug line"), "{text}");

    // Without a name there are no brackets.
    let (code, _, stderr) = run_to_end_with(dir.dir.path(), &[&script("lines.lua")], &[]);
    assert_eq!(code, 0, "{stderr}");
    let hello = stderr.lines().find(|l| l.contains("hello from")).expect(&stderr);
    assert!(is_utc_time(&hello[..24]), "{hello}");
    assert_eq!(&hello[24..], " INFO  hello from the log test");
}

#[test]
fn json_lines_parse() {
    let dir = Dir::new();
    let (code, _, stderr) = run_to_end_with(
        dir.dir.path(),
        &[
            "--log-format",
            "json",
            "--log-level",
            "debug",
            &script("lines.lua"),
            "2.1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    dir.write("lines.jsonl", &stderr);
    // Python's json module parses every line and prints what it found.
    let output = Command::new("python3")
        .arg(test_script("logging/check_json.py"))
        .arg(dir.path("lines.jsonl"))
        .output()
        .expect("run python3");
    let parsed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{parsed}\n{}\n--- log ---\n{stderr}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(parsed.contains("info 2.1 \"hello from the log test\"\n"), "{parsed}");
    assert!(
        parsed.contains("warn 2.1 \"a \\\"quoted\\\" line\\twith a tab\\nand a second line\"\n"),
        "{parsed}"
    );
    assert!(parsed.contains("debug 2.1 \"hidden debug line\"\n"), "{parsed}");
    assert!(parsed.contains("error 2.1 \"an error line\"\n"), "{parsed}");
    assert_eq!(parsed.lines().count(), stderr.lines().count(), "{stderr}");
}

#[test]
fn sighup_reopens_the_log_file_after_a_rotation() {
    let dir = Dir::new();
    let log = dir.path("app.log");
    let rotated = dir.path("app.log.1");
    let mut luna = Luna::start_in(dir.dir.path(), &["--log-file", "app.log", &script("ticker.lua")]);
    luna.expect("tick 3");
    eventually("ticks in the log file", || read(&log).contains("tick 3").then_some(()));
    std::fs::rename(&log, &rotated).unwrap();
    luna.signal(libc::SIGHUP);
    let fresh = eventually("a new log file with ticks", || {
        let text = read(&log);
        (!numbers(&text, "tick").is_empty()).then_some(text)
    });
    assert!(fresh.contains("reopened the log file"), "{fresh}");
    // A second SIGHUP without a rotation keeps appending to the same file.
    luna.signal(libc::SIGHUP);
    let seen = *numbers(&fresh, "tick").last().unwrap();
    eventually("more ticks after a second SIGHUP", || {
        numbers(&read(&log), "tick").iter().any(|&n| n > seen + 3).then_some(())
    });
    assert!(luna.child.try_wait().unwrap().is_none(), "SIGHUP stopped the process");
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(0), "{}", luna.stderr());

    // Every tick is in one of the two files, in order, none twice.
    let old = read(&rotated);
    let new = read(&log);
    assert!(old.contains("tick 1\n"), "{old}");
    let mut all = numbers(&old, "tick");
    all.extend(numbers(&new, "tick"));
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected, "--- old ---\n{old}\n--- new ---\n{new}");
    assert!(new.contains("received SIGTERM"), "{new}");
    assert_eq!(new.matches("reopened the log file").count(), 2, "{new}");
    assert!(!luna.stderr().contains("tick"), "{}", luna.stderr());
}

#[test]
fn sighup_without_a_log_file_keeps_running() {
    let dir = Dir::new();
    let mut luna = Luna::start_in(dir.dir.path(), &[&script("ticker.lua")]);
    luna.expect("tick 2");
    luna.signal(libc::SIGHUP);
    luna.expect_err("received SIGHUP: logging to stderr, no log file to reopen");
    luna.signal(libc::SIGHUP);
    luna.expect_err("received SIGHUP");
    let after = luna.value("tick").parse::<u64>().unwrap();
    luna.expect(&format!("tick {}", after + 3));
    assert!(luna.child.try_wait().unwrap().is_none(), "SIGHUP stopped the process");
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(0), "{}", luna.stderr());
}

#[test]
fn invalid_log_settings_exit_2() {
    let dir = Dir::new();
    let entry = script("lines.lua");
    let (code, stdout, stderr) = run_to_end_with(dir.dir.path(), &[&entry], &[("LUNA_LOG_LEVEL", "verbose")]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("LUNA_LOG_LEVEL: unknown log level 'verbose' (use debug, info, warn or error)"),
        "{stderr}"
    );
    assert!(!stdout.contains("hello"), "the script ran: {stdout}");
    let (code, _, stderr) = run_to_end_with(dir.dir.path(), &["--log-level", "loud", &entry], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--log-level: unknown log level 'loud'"), "{stderr}");
    let (code, _, stderr) = run_to_end_with(dir.dir.path(), &["--log-format", "xml", &entry], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unknown log format 'xml' (use text or json)"),
        "{stderr}"
    );
    // A valid variable is used.
    let (code, _, stderr) = run_to_end_with(dir.dir.path(), &[&entry], &[("LUNA_LOG_LEVEL", "error")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("an error line") && !stderr.contains("hello"),
        "{stderr}"
    );
    // A log file that cannot be opened is an error naming it.
    let (code, _, stderr) = run_to_end_with(dir.dir.path(), &["--log-file", "no/such/dir/x.log", &entry], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot open the log file no/such/dir/x.log"),
        "{stderr}"
    );
}

/// Lines from a pipe, sent over a channel as they are read.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `pattern`; returns it and every line before it.
fn wait_for(rx: &mpsc::Receiver<String>, pattern: &str, seen: &mut Vec<String>) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(pattern) => return line,
            Ok(line) => seen.push(line),
            Err(error) => panic!(
                "no line containing {pattern:?} ({error}); last lines: {:?}",
                seen.iter().rev().take(5).collect::<Vec<_>>()
            ),
        }
    }
}

#[test]
fn a_blocked_stderr_pipe_does_not_stall_the_loop() {
    const COUNT: u64 = 200_000;
    let mut child = Command::new(luna_bin())
        .arg(script("flood.lua"))
        .arg(COUNT.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn luna");
    // Killed on every way out of the test, also a failed assertion.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on the pid of the child this test started.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
    let _kill = Kill(child.id());
    let stdout = lines_of(child.stdout.take().unwrap());
    // Nobody reads stderr yet: the pipe fills after a few hundred lines.
    let stderr_pipe = child.stderr.take().unwrap();
    let mut out = Vec::new();
    let logged = wait_for(&stdout, "logged ", &mut out);
    let dropped: u64 = logged.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(dropped > 0, "nothing was dropped with a blocked pipe: {logged}");
    // The loop goes on while the writer is stuck.
    let tick = wait_for(&stdout, "tick ", &mut out);
    let tick: u64 = tick["tick ".len()..].parse().unwrap();
    wait_for(&stdout, &format!("tick {}", tick + 10), &mut out);

    // Once the pipe is read, the writer reports what it dropped.
    let stderr = lines_of(stderr_pipe);
    let mut err = Vec::new();
    let notice = wait_for(&stderr, "log lines dropped (queue full)", &mut err);
    assert!(notice.contains(" WARN  "), "{notice}");
    // SAFETY: kill(2) on the pid of the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    err.push(notice);
    err.extend(stderr.iter());
    // Every flood line was either written or counted as dropped.
    let written = err.iter().filter(|l| l.contains(" INFO  flood ")).count() as u64;
    let reported: u64 = err
        .iter()
        .filter_map(|l| l.strip_suffix(" log lines dropped (queue full)"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(reported, dropped, "reported drops differ from luna.log.dropped()");
    assert_eq!(written + dropped, COUNT, "written {written}, dropped {dropped}");
    assert!(err.iter().any(|l| l.contains("received SIGTERM")), "{:?}", err.last());
}

#[test]
fn everything_is_written_on_a_graceful_stop() {
    const COUNT: u64 = 10_000;
    let dir = Dir::new();
    let log = dir.path("burst.log");
    let (code, _, stderr) = run_to_end_with(
        dir.dir.path(),
        &["--log-file", "burst.log", &script("burst_quit.lua"), &COUNT.to_string()],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let got = numbers(&read(&log), "burst line");
    assert_eq!(got, (1..=COUNT).collect::<Vec<u64>>());
}

#[test]
fn os_exit_writes_the_queued_lines() {
    let dir = Dir::new();
    let (code, _, stderr) = run_to_end_with(
        dir.dir.path(),
        &["--log-file", "exit.log", &script("os_exit.lua"), "5000"],
        &[],
    );
    assert_eq!(code, 3, "{stderr}");
    let got = numbers(&read(&dir.path("exit.log")), "exit line");
    assert_eq!(got, (1..=5000).collect::<Vec<u64>>());
}

#[test]
fn an_error_exit_writes_the_traceback_to_the_log_file() {
    let dir = Dir::new();
    let log = dir.path("error.log");
    let (code, _, stderr) = run_to_end_with(
        dir.dir.path(),
        &["--log-file", "error.log", &script("start_error.lua")],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("boom in on_start"), "{stderr}");
    let text = read(&log);
    let before = text.find("before the error").expect(&text);
    let error = text.find(" ERROR ").expect(&text);
    assert!(before < error, "{text}");
    assert!(text.contains("start_error.lua:5: boom in on_start"), "{text}");
    assert!(text.contains("stack traceback"), "{text}");
}

#[test]
fn pid_file_is_written_and_removed() {
    let dir = Dir::new();
    let pid_file = dir.path("luna.pid");
    let mut luna = Luna::start_in(dir.dir.path(), &["--pid-file", "luna.pid", &script("ticker.lua")]);
    luna.expect("started");
    assert_eq!(read(&pid_file), format!("{}\n", luna.pid()));
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(0), "{}", luna.stderr());
    assert!(!pid_file.exists(), "the pid file is still there");

    // Also removed, and the log written, when a second signal makes luna exit at once.
    let mut luna = Luna::start_in(
        dir.dir.path(),
        &["--pid-file", "luna.pid", "--log-file", "hold.log", &script("hold.lua")],
    );
    luna.expect("started");
    assert!(pid_file.exists());
    luna.signal(libc::SIGTERM);
    luna.expect("holding 15");
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(143), "{}", luna.stderr());
    assert!(!pid_file.exists(), "the pid file is still there after exit(143)");
    let log = read(&dir.path("hold.log"));
    assert!(log.contains("holding on"), "{log}");
    assert!(log.contains("second SIGTERM while quitting: exiting now"), "{log}");

    // A pid file that cannot be written is an error naming it.
    let (code, _, stderr) = run_to_end_with(
        dir.dir.path(),
        &["--pid-file", "no/such/dir/luna.pid", &script("lines.lua")],
        &[],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot write the pid file no/such/dir/luna.pid"),
        "{stderr}"
    );
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn sd_notify_ready_after_on_start_and_stopping_on_quit() {
    let dir = Dir::new();
    let socket_path = dir.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let marker = dir.path("started.marker");
    let mut luna = Luna::start_with(
        dir.dir.path(),
        &[&script("ready.lua"), marker.to_str().unwrap()],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let ready = receive(&socket);
    assert!(marker.exists(), "READY=1 came before on_start ran");
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines, ["READY=1", &format!("MAINPID={}", luna.pid())], "{ready:?}");
    luna.expect("started");
    luna.signal(libc::SIGTERM);
    assert_eq!(receive(&socket), "STOPPING=1\n");
    assert_eq!(luna.wait_exit().code(), Some(0), "{}", luna.stderr());
    luna.expect("stopped");

    // A notify socket that is not there is reported, and the process serves on.
    let gone = dir.path("gone.sock");
    let mut luna = Luna::start_with(
        dir.dir.path(),
        &[&script("ready.lua"), marker.to_str().unwrap()],
        &[("NOTIFY_SOCKET", gone.to_str().unwrap())],
    );
    luna.expect("started");
    luna.expect_err("cannot notify the service manager of READY=1");
    luna.signal(libc::SIGTERM);
    assert_eq!(luna.wait_exit().code(), Some(0), "{}", luna.stderr());
}

fn deploy_file(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// `key=value` lines of one `[section]` of a unit file.
fn unit_section<'a>(text: &'a str, section: &str) -> Vec<(&'a str, &'a str)> {
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
        } else if inside && !line.starts_with('#') && !line.is_empty() {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not key=value: {line}"));
            found.push((key.trim(), value.trim()));
        }
    }
    found
}

#[test]
fn deploy_files_are_valid() {
    let (_, unit) = deploy_file("luna@.service");
    let service = unit_section(&unit, "Service");
    let get = |key: &str| {
        service
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("luna@.service has no {key}="))
    };
    assert_eq!(get("Type"), "notify");
    assert_eq!(get("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(get("KillSignal"), "SIGTERM");
    assert_eq!(get("Restart"), "on-failure");
    let exec_start = get("ExecStart");
    assert!(exec_start.contains("--log-file /var/log/luna/%i.log"), "{exec_start}");
    // Every flag the unit passes exists in `luna --help`.
    let help = Command::new(luna_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in exec_start.split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")),
            "{flag} is not in luna --help:\n{help}"
        );
    }
    assert!(!unit_section(&unit, "Install").is_empty(), "no [Install] section");

    let (_, rotate) = deploy_file("logrotate.conf");
    assert!(rotate.contains("/var/log/luna/*.log"), "{rotate}");
    assert!(
        rotate.contains("postrotate") && rotate.contains("endscript"),
        "{rotate}"
    );
    assert!(rotate.contains("HUP"), "{rotate}");
    assert!(
        !rotate.contains("copytruncate"),
        "rotation goes through SIGHUP: {rotate}"
    );

    let (_, container) = deploy_file("Containerfile");
    let froms: Vec<&str> = container.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a run stage: {froms:?}");
    assert!(froms[0].contains("rust") && froms[0].contains(" AS build"), "{froms:?}");
    assert!(froms[1].contains("debian") && froms[1].contains("slim"), "{froms:?}");
    assert!(container.contains("COPY --from=build"), "{container}");
    assert!(container.contains("cargo build --release"), "{container}");
    assert!(
        container.lines().any(|l| l.starts_with("ENTRYPOINT [\"")),
        "{container}"
    );
    assert!(
        container.lines().any(|l| l.starts_with("USER ")),
        "runs as root: {container}"
    );
    for line in container.lines().map(str::trim) {
        let word = line.split_whitespace().next().unwrap_or("");
        assert!(
            line.is_empty()
                || line.starts_with('#')
                || [
                    "FROM",
                    "WORKDIR",
                    "COPY",
                    "RUN",
                    "USER",
                    "ENTRYPOINT",
                    "CMD",
                    "ENV",
                    "STOPSIGNAL",
                    "VOLUME",
                    "EXPOSE",
                    "&&",
                    "LABEL"
                ]
                .contains(&word)
                || line.ends_with('\\')
                || line.starts_with("&&"),
            "unexpected Containerfile line: {line}"
        );
    }

    systemd_analyze_verify(&unit);
}

/// `systemd-analyze verify` on the unit, with ExecStart pointing at the built
/// binary (verify checks that the command exists); skipped when not installed.
fn systemd_analyze_verify(unit: &str) {
    let found = Command::new("systemd-analyze").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        println!("note: systemd-analyze is not installed: only the structural checks ran");
        return;
    }
    let dir = Dir::new();
    let copy = unit.replace("/usr/local/bin/luna", luna_bin());
    let path = dir.write("luna@.service", &copy);
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .current_dir(dir.dir.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "systemd-analyze verify failed:\n{said}");
    assert!(said.trim().is_empty(), "systemd-analyze verify warned:\n{said}");
}
