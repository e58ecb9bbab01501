//! Log lines, filtered by level: `2026-12-01T22:52:16.123Z INFO  [name] message`
//! (or one JSON object per line). The caller formats the line; a background
//! thread writes it to stderr or the `--log-file`, so logging never blocks
//! the loop (a full queue drops and counts lines instead).

mod format;
mod writer;

use std::cell::RefCell;
use std::path::Path;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

pub use format::{Format, format_line};
pub use writer::{MAX_BYTES, MAX_LINES};

/// Severity of a log line, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    /// Parses `debug`, `info`, `warn`/`warning` or `error` (any case).
    pub fn parse(text: &str) -> Option<Level> {
        // No allocation: scripts pass the level with every line.
        [
            ("info", Level::Info),
            ("debug", Level::Debug),
            ("warn", Level::Warn),
            ("error", Level::Error),
            ("warning", Level::Warn),
        ]
        .into_iter()
        .find(|(name, _)| text.eq_ignore_ascii_case(name))
        .map(|(_, level)| level)
    }

    /// The upper-case label of text lines.
    pub fn label(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }

    /// The lower-case name of JSON lines.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// How long exit paths wait for queued lines to be written.
pub const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(2);

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(0);
static NAME: RwLock<Option<String>> = RwLock::new(None);

thread_local! {
    /// Reused per thread, so a line costs no allocation.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Sets the lowest level that is written.
pub fn set_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when a line of this level would be written.
pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
}

/// Sets the line format.
pub fn set_format(format: Format) {
    FORMAT.store(u8::from(format == Format::Json), Ordering::Relaxed);
}

fn current_format() -> Format {
    if FORMAT.load(Ordering::Relaxed) == 1 {
        Format::Json
    } else {
        Format::Text
    }
}

/// Sets the process's name (service id or role) shown on every line; `None` removes it.
pub fn set_name(name: Option<&str>) {
    let mut slot = NAME.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    *slot = name.filter(|n| !n.is_empty()).map(str::to_string);
}

/// Sends lines to this file (appending) instead of stderr.
pub fn set_file(path: &Path) -> std::io::Result<()> {
    writer::set_file(path)
}

/// True when lines go to a log file.
pub fn has_file() -> bool {
    writer::has_file()
}

/// Reopens the log file at its path before the next write (log rotation).
pub fn reopen() {
    writer::reopen()
}

/// Lines dropped because the queue was full (or lost because a write failed) so far.
pub fn dropped() -> u64 {
    writer::dropped()
}

/// Waits until every queued line is written, at most `limit`; false if some are left.
pub fn flush(limit: Duration) -> bool {
    writer::flush(limit)
}

/// Formats a line with the current format and name.
fn format_with_settings(out: &mut Vec<u8>, level: Level, message: &str) {
    let name = NAME.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    format_line(out, current_format(), level, name.as_deref(), message);
}

/// Queues one log line; never blocks on the output.
pub fn write(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let queued = LINE.try_with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return false;
        };
        line.clear();
        format_with_settings(&mut line, level, message);
        writer::push(&line);
        true
    });
    if queued != Ok(true) {
        let mut line = Vec::new();
        format_with_settings(&mut line, level, message);
        writer::push(&line);
    }
}

/// Logs at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    write(Level::Error, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    write(Level::Info, message)
}

/// Makes every way out of the process write the queued lines first: exit()
/// (also `std::process::exit` and Lua's `os.exit`) and panics.
pub fn flush_on_exit() {
    extern "C" fn at_exit() {
        let _ = std::panic::catch_unwind(|| flush(EXIT_FLUSH_LIMIT));
    }
    // SAFETY: registers a plain function that catches its own panics.
    unsafe {
        libc::atexit(at_exit);
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush(EXIT_FLUSH_LIMIT);
        default_hook(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("nope"), None);
    }
}
