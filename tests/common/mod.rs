//! Helpers for tests that run the real `luna` binary on real scripts.
#![allow(dead_code)]

pub mod certs;
pub mod cluster;
pub mod proxy;
pub mod redis;
pub mod secret;
pub mod wire;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Generous deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Path of the built `luna` binary.
pub fn luna_bin() -> &'static str {
    env!("CARGO_BIN_EXE_luna")
}

/// A scratch directory with script files.
pub struct Dir {
    pub dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write script");
        path
    }

    /// Copies `tests/scripts/<relative>` to `name` in this directory (for
    /// scripts a test edits, or that must sit next to files the test writes)
    /// and returns its path.
    pub fn copy_script(&self, name: &str, relative: &str) -> PathBuf {
        let text = std::fs::read_to_string(test_script(relative))
            .unwrap_or_else(|error| panic!("test script {relative}: {error}"));
        self.write(name, &text)
    }
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

type Shared = Arc<(Mutex<Lines>, Condvar)>;

fn collect(reader: impl Read + Send + 'static) -> Shared {
    let shared: Shared = Arc::default();
    let writer = Arc::clone(&shared);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    let (lock, cond) = &*writer;
                    lock.lock().unwrap().lines.push(text);
                    cond.notify_all();
                }
            }
        }
        let (lock, cond) = &*writer;
        lock.lock().unwrap().closed = true;
        cond.notify_all();
    });
    shared
}

/// A running `luna` process; killed when dropped.
pub struct Luna {
    pub child: Child,
    stdout: Shared,
    stderr: Shared,
    out_cursor: usize,
    err_cursor: usize,
    status: Option<ExitStatus>,
}

impl Luna {
    /// Starts `luna <args...>` in `cwd`.
    pub fn start_in(cwd: &Path, args: &[&str]) -> Luna {
        Self::start_with(cwd, args, &[])
    }

    /// Starts `luna <args...>` in `cwd` with extra environment variables.
    pub fn start_with(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Luna {
        let mut command = Command::new(luna_bin());
        command
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn luna");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Luna {
            child,
            stdout,
            stderr,
            out_cursor: 0,
            err_cursor: 0,
            status: None,
        }
    }

    /// Starts `luna <script> <args...>` in the script's directory.
    pub fn start(script: &Path, args: &[&str]) -> Luna {
        let mut all = vec![script.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        Self::start_in(script.parent().expect("script dir"), &all)
    }

    fn wait_line(
        shared: &Shared,
        cursor: &mut usize,
        pattern: &str,
        deadline: Duration,
        what: &str,
        other: &Shared,
    ) -> String {
        let (lock, cond) = &**shared;
        let end = Instant::now() + deadline;
        let mut guard = lock.lock().unwrap();
        loop {
            if let Some(offset) = guard.lines[*cursor..].iter().position(|line| line.contains(pattern)) {
                let at = *cursor + offset;
                *cursor = at + 1;
                return guard.lines[at].clone();
            }
            let now = Instant::now();
            if guard.closed || now >= end {
                let seen = guard.lines.join("\n");
                drop(guard);
                let other_text = other.0.lock().unwrap().lines.join("\n");
                panic!(
                    "{what}: no line containing {pattern:?} ({})\n--- {what} ---\n{seen}\n--- other stream ---\n{other_text}",
                    if guard_closed(shared) {
                        "stream closed"
                    } else {
                        "timed out"
                    }
                );
            }
            guard = cond.wait_timeout(guard, end - now).unwrap().0;
        }
    }

    /// Waits for a stdout line containing `pattern` (after the previous match).
    pub fn expect(&mut self, pattern: &str) -> String {
        Self::wait_line(
            &self.stdout,
            &mut self.out_cursor,
            pattern,
            DEADLINE,
            "stdout",
            &self.stderr,
        )
    }

    /// Waits for a stderr line containing `pattern` (after the previous match).
    pub fn expect_err(&mut self, pattern: &str) -> String {
        Self::wait_line(
            &self.stderr,
            &mut self.err_cursor,
            pattern,
            DEADLINE,
            "stderr",
            &self.stdout,
        )
    }

    /// Waits for a stdout line `KEY value` and returns the value.
    pub fn value(&mut self, key: &str) -> String {
        let line = self.expect(&format!("{key} "));
        let at = line.find(&format!("{key} ")).unwrap() + key.len() + 1;
        line[at..].trim().to_string()
    }

    /// The value of the last stdout line `key <value>` so far.
    pub fn last_value(&self, key: &str) -> Option<String> {
        let prefix = format!("{key} ");
        self.stdout()
            .iter()
            .rev()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_string))
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.0.lock().unwrap().lines.clone()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> String {
        self.stderr.0.lock().unwrap().lines.join("\n")
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) takes no pointers; the child is ours and not reaped yet.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the process to exit (panics after the deadline).
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(DEADLINE)
            .unwrap_or_else(|| panic!("luna did not exit\n--- stderr ---\n{}", self.stderr()))
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                // Let the reader threads see the end of the pipes.
                for shared in [&self.stdout, &self.stderr] {
                    let (lock, cond) = &**shared;
                    let guard = lock.lock().unwrap();
                    let _ = cond.wait_timeout_while(guard, Duration::from_secs(2), |l| !l.closed);
                }
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10)); // poll period of the wait for the exit
        }
    }

    /// CPU time (user + system) the process has used, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("proc stat");
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf(3) takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn guard_closed(shared: &Shared) -> bool {
    shared.0.try_lock().map(|l| l.closed).unwrap_or(false)
}

impl Drop for Luna {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `luna <args>` to completion in `cwd`: (status code, stdout, stderr).
pub fn run_to_end(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(luna_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run luna");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `check` until it returns Some, or panics after the deadline.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= end {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20)); // poll period of the wait for the condition
    }
}

/// Runs `luna <args>` to completion in `cwd` with extra environment
/// variables: (status code, stdout, stderr).
pub fn run_to_end_with(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(luna_bin());
    command.args(args).current_dir(cwd).stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run luna");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Path of a test script under `tests/scripts/`.
pub fn test_script(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(relative)
}

/// Starts the shipped router (runtime_lua/router.lua) in `cwd` on a free
/// loopback port with extra `args`: (process, "ip:port").
pub fn start_router(cwd: &Path, args: &[&str]) -> (Luna, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime_lua/router.lua");
    let mut all = vec![script.to_str().expect("utf-8 path"), "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut router = Luna::start_in(cwd, &all);
    let address = router.value("listening");
    (router, address)
}

/// `test_script(relative)` as a string, for command lines.
pub fn script_arg(relative: &str) -> String {
    test_script(relative).to_str().expect("utf-8 path").to_string()
}

/// Panics with how to install it unless python3 can import `module`
/// (`package` is its pip name).
pub fn require_python_module(module: &str, package: &str) {
    let missing = format!(
        "Python package {package} is missing: run `python3 -m pip install {package}` (bash .ci/run installs it)"
    );
    let status = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(_) => panic!("{missing}"),
        Err(error) => panic!("cannot run python3 ({error}): install Python 3, then: {missing}"),
    }
}
