//! Waiting on the poller.
//!
//! Sources are registered, modified and woken through `polling`. On Linux
//! the wait itself calls `epoll_wait` on the poller's descriptor: polling
//! 3.x re-arms a timerfd before, and its notifier eventfd after, every
//! wait, four extra system calls per loop pass that showed up as the
//! largest cost of a ping-pong (measured with strace on the W1 benchmark).
//! When the notifier fires (signal, file change, name lookup), one
//! `Poller::wait` with a zero timeout lets polling clear and re-arm it.

use std::io;
use std::time::Duration;

use polling::{Events, Poller};

/// The readiness the poller reported for one key.
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    /// The key the source was registered with.
    pub key: usize,
    /// Readable (or hung up / in error: a read will tell).
    pub readable: bool,
    /// Writable (or hung up / in error: a write will tell).
    pub writable: bool,
    /// The peer finished sending (or the socket broke): read until end of file.
    pub hangup: bool,
}

/// True when a read that returned less than asked proves the socket has no
/// more input now. On Linux sources are registered with EPOLLRDHUP, so a
/// peer's end of file always raises an event of its own; elsewhere streams
/// are read until they would block.
pub const SHORT_READ_DRAINS: bool = cfg!(target_os = "linux");

/// Registers a socket edge-triggered for reading and writing under `key`.
///
/// # Safety
/// `fd` must stay open until it is deleted from the poller.
pub unsafe fn register_edge(poller: &Poller, fd: std::os::fd::RawFd, key: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // polling's interest has no EPOLLRDHUP: register directly so a peer's
        // end of file is never hidden behind a short read.
        let flags = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        let mut event = libc::epoll_event {
            events: flags as u32,
            u64: key as u64,
        };
        // SAFETY: epoll_ctl reads the event we pass; the caller keeps fd open.
        if unsafe { libc::epoll_ctl(poller.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: forwarded from the caller.
        unsafe { poller.add_with_mode(fd, polling::Event::all(key), polling::PollMode::Edge) }
    }
}

/// The key polling gives its own notifier and timer.
const NOTIFY_KEY: u64 = usize::MAX as u64;

/// Reused buffers for waiting.
pub struct Waiter {
    events: Events,
    #[cfg(target_os = "linux")]
    raw: Vec<libc::epoll_event>,
}

impl Default for Waiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Waiter {
    /// Empty buffers.
    pub fn new() -> Self {
        Waiter {
            events: Events::new(),
            #[cfg(target_os = "linux")]
            raw: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        }
    }

    /// Waits up to `timeout` (None: until something is ready) and appends
    /// what is ready to `ready`.
    pub fn wait(&mut self, poller: &Poller, timeout: Option<Duration>, ready: &mut Vec<Readiness>) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            self.wait_epoll(poller, timeout, ready)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.wait_polling(poller, timeout, ready)
        }
    }

    fn wait_polling(
        &mut self,
        poller: &Poller,
        timeout: Option<Duration>,
        ready: &mut Vec<Readiness>,
    ) -> io::Result<()> {
        self.events.clear();
        match poller.wait(&mut self.events, timeout) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
        ready.extend(self.events.iter().map(|event| Readiness {
            key: event.key,
            readable: event.readable,
            writable: event.writable,
            hangup: event.is_interrupt(),
        }));
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn wait_epoll(&mut self, poller: &Poller, timeout: Option<Duration>, ready: &mut Vec<Readiness>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // Milliseconds, rounded up so a timer is never woken for too early.
        let timeout_ms = match timeout {
            None => -1,
            Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        // SAFETY: the buffer holds `raw.len()` events and outlives the call.
        let count = unsafe {
            libc::epoll_wait(
                poller.as_raw_fd(),
                self.raw.as_mut_ptr(),
                self.raw.len() as i32,
                timeout_ms,
            )
        };
        if count < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(error)
            };
        }
        let mut notified = false;
        for event in &self.raw[..count as usize] {
            let bits = event.events as i32;
            let key = event.u64;
            if key == NOTIFY_KEY {
                notified = true;
                continue;
            }
            let broken = bits & (libc::EPOLLHUP | libc::EPOLLERR) != 0;
            let hangup = broken || bits & libc::EPOLLRDHUP != 0;
            ready.push(Readiness {
                key: key as usize,
                readable: hangup || bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0,
                writable: broken || bits & libc::EPOLLOUT != 0,
                hangup,
            });
        }
        if notified {
            // Let polling consume and re-arm its notifier; keep any events it sees.
            self.wait_polling(poller, Some(Duration::ZERO), ready)?;
        }
        Ok(())
    }
}
