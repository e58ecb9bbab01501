//! Child processes of the bench: spawning (optionally pinned to a core),
//! reading their output line by line, and killing every one of them on drop,
//! on panic (unwinding runs the drops) and on SIGINT/SIGTERM/SIGHUP.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Pids of the live children, for the signal handler.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Scratch directories to remove if the bench is interrupted.
static TEMP_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Stderr lines kept per child for error reports.
const STDERR_KEEP: usize = 40;

/// Kills the children when the bench itself gets SIGINT, SIGTERM or SIGHUP.
pub fn install_signal_cleanup() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signo) = signals.forever().next() {
            kill_all();
            for dir in TEMP_DIRS.lock().map(|d| d.clone()).unwrap_or_default() {
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!("luna-bench: interrupted (signal {signo}); child processes killed");
            std::process::exit(128 + signo);
        }
    });
    Ok(())
}

fn kill_all() {
    let pids = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for pid in pids {
        // SAFETY: plain kill(2) on a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// How to start a luna process.
#[derive(Clone, Debug)]
pub enum LunaExe {
    /// The real `luna` binary.
    Real(PathBuf),
    /// This bench binary in `--luna-runtime` mode (same library code).
    Embedded(PathBuf),
}

impl LunaExe {
    /// The `luna` binary next to this executable when it is there and not
    /// older than the library sources; otherwise this binary's embedded copy
    /// of the runtime, with a note why.
    pub fn locate() -> Result<(LunaExe, Option<String>)> {
        let me = std::env::current_exe().context("current_exe")?;
        let real = me.with_file_name("luna");
        let Ok(meta) = std::fs::metadata(&real) else {
            let note = format!(
                "{} not found (`cargo run --bin luna-bench` builds only luna-bench): using the luna runtime \
                 built into luna-bench (same code; `cargo build --release` first to bench the real binary)",
                real.display()
            );
            return Ok((LunaExe::Embedded(me), Some(note)));
        };
        let built = meta.modified().ok();
        let newest_source = newest_source_time();
        if let (Some(built), Some((source_time, source))) = (built, newest_source)
            && source_time > built
        {
            let note = format!(
                "{} is older than {} (`cargo run --bin luna-bench` does not rebuild it): using the luna \
                 runtime built into luna-bench (same code; `cargo build --release` first to bench the real binary)",
                real.display(),
                source.display()
            );
            return Ok((LunaExe::Embedded(me), Some(note)));
        }
        Ok((LunaExe::Real(real), None))
    }

    /// Program and leading arguments.
    pub fn program(&self) -> (PathBuf, Vec<String>) {
        match self {
            LunaExe::Real(path) => (path.clone(), Vec::new()),
            LunaExe::Embedded(path) => (path.clone(), vec!["--luna-runtime".to_string()]),
        }
    }

    /// A human description.
    pub fn describe(&self) -> String {
        match self {
            LunaExe::Real(path) => path.display().to_string(),
            LunaExe::Embedded(path) => format!("{} --luna-runtime (embedded)", path.display()),
        }
    }
}

/// Modification time of the newest file that goes into the `luna` binary
/// (Cargo.toml, src/ outside src/bin/, runtime_lua/), if the tree is there.
fn newest_source_time() -> Option<(std::time::SystemTime, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack = vec![root.join("src"), root.join("runtime_lua"), root.join("Cargo.toml")];
    while let Some(path) = stack.pop() {
        if path == root.join("src").join("bin") {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(time) = meta.modified()
            && newest.as_ref().is_none_or(|(t, _)| time > *t)
        {
            newest = Some((time, path));
        }
    }
    newest
}

/// Where pinning comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// `taskset -c N` in front of the command.
    Taskset,
    /// sched_setaffinity in the child before exec.
    Affinity,
}

impl Pinning {
    /// `taskset` when it is on PATH, else sched_setaffinity.
    pub fn detect() -> Pinning {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join("taskset").is_file()))
            .unwrap_or(false);
        if found { Pinning::Taskset } else { Pinning::Affinity }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pinning::Taskset => "taskset -c",
            Pinning::Affinity => "sched_setaffinity",
        }
    }
}

/// Number of CPUs this process may run on.
pub fn cpus_available() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A running child; killed and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The stderr pipe, held open and never read (see [`Proc::spawn_unread_stderr`]).
    _unread_stderr: Option<ChildStderr>,
    /// Stdout lines read while waiting for something else.
    pub other_lines: Vec<String>,
}

impl Proc {
    /// Starts `program args...`, optionally pinned to `cpu`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        cpu: Option<(usize, Pinning)>,
        cwd: &Path,
    ) -> Result<Proc> {
        Self::spawn_with(name, program, args, cpu, cwd, true, &[])
    }

    /// Like [`Proc::spawn`], with extra environment variables.
    pub fn spawn_env(
        name: &str,
        program: &Path,
        args: &[String],
        cpu: Option<(usize, Pinning)>,
        cwd: &Path,
        env: &[(String, String)],
    ) -> Result<Proc> {
        Self::spawn_with(name, program, args, cpu, cwd, true, env)
    }

    /// Like [`Proc::spawn`], but nobody reads the child's stderr pipe: once
    /// the pipe buffer is full, every write to stderr blocks.
    pub fn spawn_unread_stderr(name: &str, program: &Path, args: &[String], cwd: &Path) -> Result<Proc> {
        Self::spawn_with(name, program, args, None, cwd, false, &[])
    }

    fn spawn_with(
        name: &str,
        program: &Path,
        args: &[String],
        cpu: Option<(usize, Pinning)>,
        cwd: &Path,
        read_stderr: bool,
        env: &[(String, String)],
    ) -> Result<Proc> {
        let mut command = match cpu {
            Some((cpu, Pinning::Taskset)) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(program);
                c
            }
            _ => Command::new(program),
        };
        command
            .args(args)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let affinity = match cpu {
            Some((cpu, Pinning::Affinity)) => Some(cpu),
            _ => None,
        };
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Die with the bench even if it is SIGKILLed (children are
                // spawned from the main thread, which lives until the end).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(cpu) = affinity {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        if let Ok(mut live) = LIVE.lock() {
            live.push(child.id());
        }
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let keep = Arc::clone(&stderr);
        let err_pipe = child.stderr.take().expect("piped stderr");
        let unread_stderr = if read_stderr {
            std::thread::spawn(move || collect_stderr(err_pipe, keep));
            None
        } else {
            Some(err_pipe)
        };
        Ok(Proc {
            name: name.to_string(),
            child,
            lines,
            stderr,
            _unread_stderr: unread_stderr,
            other_lines: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line `<word> <rest>` (or just `<word>`) and returns
    /// `<rest>`. A line starting with `error`, the end of the process or the
    /// timeout fails.
    pub fn expect(&mut self, word: &str, timeout: Duration) -> Result<String> {
        match self.wait_for(word, timeout)? {
            Some(rest) => Ok(rest),
            None => bail!(
                "{} printed no `{word}` line within {:?}{}",
                self.name,
                timeout,
                self.stderr_tail()
            ),
        }
    }

    /// Like [`Proc::expect`], but `None` on timeout.
    pub fn wait_for(&mut self, word: &str, timeout: Duration) -> Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(word)
                        && (rest.is_empty() || rest.starts_with(' '))
                    {
                        return Ok(Some(rest.trim().to_string()));
                    }
                    if line.starts_with("error") {
                        bail!("{} reported: {line}{}", self.name, self.stderr_tail());
                    }
                    self.other_lines.push(line);
                }
                Err(RecvTimeoutError::Timeout) => return Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(1));
                    bail!(
                        "{} ended ({status}) before printing `{word}`{}",
                        self.name,
                        self.stderr_tail()
                    )
                }
            }
        }
    }

    /// Stdout lines available now (not waiting), plus earlier unmatched ones.
    pub fn drain(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.other_lines);
        lines.extend(self.lines.try_iter());
        lines
    }

    /// Stderr lines that look like problems (luna's ERROR and WARN log lines,
    /// anything else not an INFO line).
    pub fn stderr_problems(&self) -> Vec<String> {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .into_iter()
            .filter(|l| !l.contains(" INFO  ") && !l.trim().is_empty())
            .collect()
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            let tail: Vec<String> = lines.iter().rev().take(10).rev().cloned().collect();
            format!("\n  stderr of {}:\n    {}", self.name, tail.join("\n    "))
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {timeout:?}{}", self.name, self.stderr_tail());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => return "still running".to_string(),
                Err(e) => return e.to_string(),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let pid = self.child.id();
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|&p| p != pid);
        }
    }
}

fn collect_stderr(pipe: impl Read, keep: Arc<Mutex<VecDeque<String>>>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut keep) = keep.lock() {
            if keep.len() == STDERR_KEEP {
                keep.pop_front();
            }
            keep.push_back(line);
        }
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("luna-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        if let Ok(mut dirs) = TEMP_DIRS.lock() {
            dirs.push(dir.clone());
        }
        Ok(TempDir(dir))
    }

    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// VmRSS of a process in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/<pid>/status")?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .context("parse VmRSS")?;
            return Ok(kb * 1024);
        }
    }
    bail!("no VmRSS line in /proc/{pid}/status")
}
