//! SIGTERM and SIGINT: a watcher thread hands the first one to the loop and
//! wakes it; a second one while quitting exits at once. SIGHUP reopens the
//! log file (log rotation) and never stops the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::runtime::poller::Poller;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::log;

/// The signal waiting for the loop, 0 when none (`default()`: none yet).
#[derive(Default)]
pub struct QuitSignal {
    pending: AtomicI32,
    received: AtomicI32,
}

impl QuitSignal {
    /// Takes the signal waiting for the loop, if any.
    pub fn take(&self) -> Option<i32> {
        match self.pending.swap(0, Ordering::AcqRel) {
            0 => None,
            signo => Some(signo),
        }
    }

    /// True while a signal waits for the loop.
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }
}

/// Starts the signal thread; SIGPIPE is ignored by the Rust runtime already.
pub fn install(poller: Arc<Poller>) -> std::io::Result<Arc<QuitSignal>> {
    let quit = Arc::new(QuitSignal {
        pending: AtomicI32::new(0),
        received: AtomicI32::new(0),
    });
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let shared = Arc::clone(&quit);
    std::thread::Builder::new().name("luna-signals".into()).spawn(move || {
        for signo in signals.forever() {
            if signo == SIGHUP {
                reopen_log();
                continue;
            }
            if shared.received.swap(signo, Ordering::AcqRel) != 0 {
                log::warn(&format!("second {} while quitting: exiting now", name(signo)));
                log::flush(log::EXIT_FLUSH_LIMIT);
                std::process::exit(128 + signo);
            }
            shared.pending.store(signo, Ordering::Release);
            let _ = poller.notify();
        }
    })?;
    Ok(quit)
}

/// SIGHUP: the log writer reopens the file before its next write (the log
/// file says how that went); without a log file there is nothing to reopen.
fn reopen_log() {
    if log::has_file() {
        log::reopen();
    } else {
        log::info("received SIGHUP: logging to stderr, no log file to reopen");
    }
}

/// "SIGTERM", "SIGINT", "SIGHUP" or the number.
pub fn name(signo: i32) -> String {
    match signo {
        SIGTERM => "SIGTERM".into(),
        SIGINT => "SIGINT".into(),
        SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}
