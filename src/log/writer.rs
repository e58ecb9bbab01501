//! The bounded queue of formatted lines and the thread that writes them, in
//! batches, to stderr or the log file. Callers never block on the output:
//! when the queue is full, lines are dropped and counted, and the writer
//! reports how many once it has room again.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use super::Level;

/// Most lines waiting in the queue.
pub const MAX_LINES: usize = 65_536;
/// Most bytes waiting in the queue (one longer line is still taken when the queue is empty).
pub const MAX_BYTES: usize = 8 << 20;

/// Lines waiting for the writer.
struct Queue {
    buf: Vec<u8>,
    lines: usize,
    /// Dropped since the writer last reported drops.
    dropped: u64,
    /// A reopen of the log file was asked for (SIGHUP).
    reopen: bool,
    /// The writer holds a batch it has not finished writing.
    busy: bool,
    /// The writer sleeps on WAKE (only then is a wake-up worth a system call).
    waiting: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    buf: Vec::new(),
    lines: 0,
    dropped: 0,
    reopen: false,
    busy: false,
    waiting: false,
});
/// Wakes the writer when the queue gets work.
static WAKE: Condvar = Condvar::new();
/// Wakes flushers when the writer has nothing left.
static IDLE: Condvar = Condvar::new();
/// Lines dropped (queue full) or lost (write failed) since the start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Where lines go; only the writer writes through it once it runs.
static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);
/// True once a log file was set (read without waiting for the writer).
static HAS_FILE: AtomicBool = AtomicBool::new(false);
static START: Once = Once::new();
/// True when the writer thread runs; false means callers write themselves.
static THREADED: AtomicBool = AtomicBool::new(false);

enum Sink {
    Stderr,
    File { path: PathBuf, file: File },
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stderr => write_fd(libc::STDERR_FILENO, bytes),
            Sink::File { file, .. } => file.write_all(bytes),
        }
    }
}

/// Writes everything to a raw descriptor (stderr without the std lock, so a
/// writer blocked on a full pipe holds nothing anyone else needs).
fn write_fd(fd: i32, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: write(2) reads at most bytes.len() bytes from a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

fn queue() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sink() -> MutexGuard<'static, Sink> {
    SINK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// Sends lines to `path` (opened for appending, created if missing) from now on.
pub fn set_file(path: &Path) -> io::Result<()> {
    let file = open(path)?;
    // Absolute, so messages name it fully and a reopen finds the same path.
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    *sink() = Sink::File { path, file };
    HAS_FILE.store(true, Ordering::Release);
    Ok(())
}

/// True when lines go to a log file rather than stderr.
pub fn has_file() -> bool {
    HAS_FILE.load(Ordering::Acquire)
}

/// Lines dropped or lost so far.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Queues one complete line; drops and counts it when the queue is full.
pub fn push(line: &[u8]) {
    START.call_once(start);
    if !THREADED.load(Ordering::Acquire) {
        if sink().write_all(line).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let mut queue = queue();
    if queue.lines >= MAX_LINES || (queue.lines > 0 && queue.buf.len() + line.len() > MAX_BYTES) {
        queue.dropped += 1;
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    queue.buf.extend_from_slice(line);
    queue.lines += 1;
    let wake = std::mem::take(&mut queue.waiting);
    drop(queue);
    if wake {
        WAKE.notify_one();
    }
}

/// Asks the writer to reopen the log file before its next write.
pub fn reopen() {
    START.call_once(start);
    let mut queue = queue();
    queue.reopen = true;
    queue.waiting = false;
    drop(queue);
    WAKE.notify_one();
}

/// Waits until every queued line is written, at most `limit`; false on timeout.
pub fn flush(limit: Duration) -> bool {
    if !THREADED.load(Ordering::Acquire) {
        return true;
    }
    let deadline = Instant::now() + limit;
    let mut queue = queue();
    loop {
        if queue.buf.is_empty() && !queue.busy && queue.dropped == 0 && !queue.reopen {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        queue = IDLE
            .wait_timeout(queue, deadline - now)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
}

fn start() {
    let spawned = std::thread::Builder::new().name("luna-log".into()).spawn(run);
    match spawned {
        Ok(_) => THREADED.store(true, Ordering::Release),
        Err(error) => {
            let _ = write_fd(
                libc::STDERR_FILENO,
                format!("luna: cannot start the log writer thread ({error}); logging synchronously\n").as_bytes(),
            );
        }
    }
}

/// After a batch this small the writer pauses, so that lines gather: under a
/// steady trickle it writes (and is woken) about once per pause, not per line.
const SMALL_BATCH: usize = 4096;
const GATHER_PAUSE: Duration = Duration::from_millis(1);

/// The writer thread: takes the whole queue at once and writes it in one call.
fn run() {
    let mut batch = Vec::new();
    let mut failing = false;
    loop {
        let (lines, dropped, reopen) = {
            let mut queue = queue();
            while queue.buf.is_empty() && queue.dropped == 0 && !queue.reopen {
                queue.busy = false;
                IDLE.notify_all();
                queue.waiting = true;
                queue = WAKE.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            queue.waiting = false;
            std::mem::swap(&mut queue.buf, &mut batch);
            queue.busy = true;
            (
                std::mem::take(&mut queue.lines),
                std::mem::take(&mut queue.dropped),
                std::mem::take(&mut queue.reopen),
            )
        };
        let mut sink = sink();
        if reopen {
            let note = reopen_file(&mut sink);
            let _ = sink.write_all(&note);
        }
        match sink.write_all(&batch) {
            Ok(()) => failing = false,
            Err(error) => {
                DROPPED.fetch_add(lines as u64, Ordering::Relaxed);
                if let Sink::File { path, .. } = &*sink
                    && !failing
                {
                    let message = format!(
                        "luna: cannot write the log file {}: {error} ({lines} lines lost)\n",
                        path.display()
                    );
                    let _ = write_fd(libc::STDERR_FILENO, message.as_bytes());
                }
                failing = true;
            }
        }
        if dropped > 0 {
            let mut note = Vec::new();
            super::format_with_settings(
                &mut note,
                Level::Warn,
                &format!("{dropped} log lines dropped (queue full)"),
            );
            let _ = sink.write_all(&note);
        }
        drop(sink);
        batch.clear();
        batch.shrink_to(MAX_BYTES);
        if lines < SMALL_BATCH {
            std::thread::sleep(GATHER_PAUSE);
        }
    }
}

/// Reopens the log file at its path (after a rotation renamed it); returns
/// the line that says how it went, for the file now in use.
fn reopen_file(sink: &mut Sink) -> Vec<u8> {
    let mut note = Vec::new();
    match sink {
        Sink::Stderr => {}
        Sink::File { path, file } => match open(path) {
            Ok(new) => {
                *file = new;
                super::format_with_settings(
                    &mut note,
                    Level::Info,
                    &format!("reopened the log file {} (SIGHUP)", path.display()),
                );
            }
            Err(error) => super::format_with_settings(
                &mut note,
                Level::Error,
                &format!(
                    "cannot reopen the log file {} ({error}): still writing to the old file",
                    path.display()
                ),
            ),
        },
    }
    note
}
