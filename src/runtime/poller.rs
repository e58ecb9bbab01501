//! The process's one readiness poller: sockets register here, and signals,
//! the file watcher and name lookups wake it from their threads.
//!
//! On Linux luna owns its epoll instance and an eventfd for wake-ups. The
//! `polling` crate's `wait` re-arms a timerfd before, and its notifier after,
//! every wait: four extra system calls per loop pass, which profiling showed
//! as the largest cost of a ping-pong (W1 went from 0.65 to about 0.9 of its
//! baseline without them). Its interest set also lacks EPOLLRDHUP, without
//! which a peer's end of file arriving with its last bytes can hide behind a
//! short read. Owning the few epoll calls outright (this module, with its own
//! tests) costs less than depending on that crate's private details. Other
//! systems use `polling`'s public API.

/// The readiness the poller reported for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

#[cfg(target_os = "linux")]
pub use linux::Poller;
#[cfg(not(target_os = "linux"))]
pub use portable::Poller;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    use super::Readiness;

    /// The key of the wake-up eventfd; socket keys are slot indexes, far below it.
    const WAKE_KEY: u64 = u64::MAX;
    /// Events taken per wait.
    const BATCH: usize = 1024;

    /// An epoll instance and its wake-up eventfd.
    pub struct Poller {
        epoll: OwnedFd,
        wake: OwnedFd,
    }

    fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    impl Poller {
        /// A new poller.
        pub fn new() -> io::Result<Poller> {
            // SAFETY: epoll_create1 and eventfd take no pointers; each returned
            // descriptor is checked, then owned by exactly one OwnedFd.
            let (epoll, wake) = unsafe {
                let epoll = OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?);
                let wake = check(libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK))?;
                (epoll, OwnedFd::from_raw_fd(wake))
            };
            let poller = Poller { epoll, wake };
            // Level-triggered: a wake-up stays visible until a wait reads it.
            poller.ctl(
                libc::EPOLL_CTL_ADD,
                poller.wake.as_raw_fd(),
                libc::EPOLLIN as u32,
                WAKE_KEY,
            )?;
            Ok(poller)
        }

        fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
            let mut event = libc::epoll_event { events, u64: key };
            // SAFETY: epoll_ctl reads the one event we pass, during the call only.
            check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) })?;
            Ok(())
        }

        /// Registers a socket edge-triggered for reading, writing and the
        /// peer's end of file under `key`.
        ///
        /// # Safety
        /// `fd` must stay open until it is deleted with [`Poller::delete`]
        /// (epoll would report on whatever reuses the number otherwise).
        pub unsafe fn register(&self, fd: RawFd, key: usize) -> io::Result<()> {
            let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
            self.ctl(libc::EPOLL_CTL_ADD, fd, events as u32, key as u64)
        }

        /// Stops reporting on `fd`.
        pub fn delete(&self, fd: RawFd) -> io::Result<()> {
            self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
        }

        /// Wakes the current or next wait, from any thread.
        pub fn notify(&self) -> io::Result<()> {
            let one: u64 = 1;
            // SAFETY: writes the 8 bytes of `one`, which outlives the call.
            let written = unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
            match written {
                8 => Ok(()),
                // A full counter (EAGAIN) still wakes the waiter: nothing is lost.
                _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        }

        /// Waits up to `timeout` (None: until something is ready) and
        /// appends what is ready to `ready`; a wake-up appends nothing.
        pub fn wait(&self, timeout: Option<Duration>, ready: &mut Vec<Readiness>) -> io::Result<()> {
            // Milliseconds, rounded up so a timer is never woken for too early.
            let timeout_ms = match timeout {
                None => -1,
                Some(t) => t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
            };
            // Not initialised: the kernel fills the first `count` entries.
            let mut events = [const { MaybeUninit::<libc::epoll_event>::uninit() }; BATCH];
            // SAFETY: the kernel writes at most BATCH events into `events`,
            // which lives for the whole call.
            let count = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr().cast(),
                    BATCH as i32,
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
            for event in &events[..count as usize] {
                // SAFETY: epoll_wait initialised the first `count` entries.
                let event = unsafe { event.assume_init_ref() };
                if event.u64 == WAKE_KEY {
                    self.clear_wake();
                    continue;
                }
                let bits = event.events as i32;
                let broken = bits & (libc::EPOLLHUP | libc::EPOLLERR) != 0;
                let hangup = broken || bits & libc::EPOLLRDHUP != 0;
                ready.push(Readiness {
                    key: event.u64 as usize,
                    readable: hangup || bits & (libc::EPOLLIN | libc::EPOLLPRI) != 0,
                    writable: broken || bits & libc::EPOLLOUT != 0,
                    hangup,
                });
            }
            Ok(())
        }

        fn clear_wake(&self) {
            let mut counter: u64 = 0;
            // SAFETY: reads at most 8 bytes into `counter`, which outlives the
            // call; a failed read (EAGAIN) leaves nothing to clear.
            unsafe { libc::read(self.wake.as_raw_fd(), (&mut counter as *mut u64).cast(), 8) };
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod portable {
    use std::io;
    use std::os::fd::{BorrowedFd, RawFd};
    use std::sync::Mutex;
    use std::time::Duration;

    use polling::{Event, Events, PollMode};

    use super::Readiness;

    /// `polling`'s poller, through its public API only.
    pub struct Poller {
        inner: polling::Poller,
        events: Mutex<Events>,
    }

    impl Poller {
        /// A new poller.
        pub fn new() -> io::Result<Poller> {
            Ok(Poller {
                inner: polling::Poller::new()?,
                events: Mutex::new(Events::new()),
            })
        }

        /// Registers a socket edge-triggered for reading and writing under `key`.
        ///
        /// # Safety
        /// `fd` must stay open until it is deleted with [`Poller::delete`].
        pub unsafe fn register(&self, fd: RawFd, key: usize) -> io::Result<()> {
            // SAFETY: forwarded from the caller.
            unsafe { self.inner.add_with_mode(fd, Event::all(key), PollMode::Edge) }
        }

        /// Stops reporting on `fd`.
        pub fn delete(&self, fd: RawFd) -> io::Result<()> {
            // SAFETY: the caller still owns `fd` (it deletes before closing).
            self.inner.delete(unsafe { BorrowedFd::borrow_raw(fd) })
        }

        /// Wakes the current or next wait, from any thread.
        pub fn notify(&self) -> io::Result<()> {
            self.inner.notify()
        }

        /// Waits up to `timeout` and appends what is ready to `ready`.
        pub fn wait(&self, timeout: Option<Duration>, ready: &mut Vec<Readiness>) -> io::Result<()> {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            events.clear();
            match self.inner.wait(&mut events, timeout) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
            ready.extend(events.iter().map(|event| Readiness {
                key: event.key,
                readable: event.readable,
                writable: event.writable,
                hangup: event.is_interrupt(),
            }));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    impl Poller {
        /// Waits and returns what is ready.
        fn wait_ready(&self, timeout: Option<Duration>) -> std::io::Result<Vec<Readiness>> {
            let mut ready = Vec::new();
            self.wait(timeout, &mut ready)?;
            Ok(ready)
        }
    }

    #[test]
    fn reports_readable_writable_and_the_peers_end_of_file() {
        let poller = Poller::new().unwrap();
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        // SAFETY: `ours` outlives its registration (deleted below).
        unsafe { poller.register(ours.as_raw_fd(), 7) }.unwrap();
        let ready = poller.wait_ready(Some(Duration::from_secs(1))).unwrap();
        assert!(
            ready.iter().any(|r| r.key == 7 && r.writable && !r.readable),
            "{ready:?}"
        );
        theirs.write_all(b"x").unwrap();
        let ready = poller.wait_ready(Some(Duration::from_secs(1))).unwrap();
        assert!(ready.iter().any(|r| r.key == 7 && r.readable), "{ready:?}");
        let mut byte = [0u8; 1];
        assert_eq!(ours.read(&mut byte).unwrap(), 1);
        drop(theirs);
        let ready = poller.wait_ready(Some(Duration::from_secs(1))).unwrap();
        assert!(ready.iter().any(|r| r.key == 7 && r.hangup && r.readable), "{ready:?}");
        poller.delete(ours.as_raw_fd()).unwrap();
    }

    #[test]
    fn edge_triggered_reports_new_input_once() {
        let poller = Poller::new().unwrap();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        // SAFETY: `ours` outlives its registration.
        unsafe { poller.register(ours.as_raw_fd(), 3) }.unwrap();
        theirs.write_all(b"abc").unwrap();
        let first = poller.wait_ready(Some(Duration::from_secs(1))).unwrap();
        assert!(first.iter().any(|r| r.key == 3 && r.readable));
        // Not read, no new input: no second report.
        let second = poller.wait_ready(Some(Duration::from_millis(20))).unwrap();
        assert!(!second.iter().any(|r| r.key == 3 && r.readable), "{second:?}");
        poller.delete(ours.as_raw_fd()).unwrap();
    }

    #[test]
    fn notify_wakes_a_wait_from_another_thread_and_is_cleared() {
        let poller = Arc::new(Poller::new().unwrap());
        let waker = Arc::clone(&poller);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.notify().unwrap();
        });
        let ready = poller.wait_ready(Some(Duration::from_secs(10))).unwrap();
        assert!(ready.is_empty(), "a wake-up reports no source: {ready:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the notify, not the timeout"
        );
        thread.join().unwrap();
        // Cleared: the next wait times out.
        let started = Instant::now();
        poller.wait_ready(Some(Duration::from_millis(30))).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(29));
    }

    #[test]
    fn a_timeout_is_never_short() {
        let poller = Poller::new().unwrap();
        for wanted in [Duration::from_micros(300), Duration::from_millis(15)] {
            let started = Instant::now();
            poller.wait_ready(Some(wanted)).unwrap();
            assert!(
                started.elapsed() >= wanted,
                "woke after {:?} for {wanted:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn deleted_sources_are_not_reported() {
        let poller = Poller::new().unwrap();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        // SAFETY: `ours` outlives its registration.
        unsafe { poller.register(ours.as_raw_fd(), 9) }.unwrap();
        poller.delete(ours.as_raw_fd()).unwrap();
        theirs.write_all(b"x").unwrap();
        let ready = poller.wait_ready(Some(Duration::from_millis(20))).unwrap();
        assert!(ready.iter().all(|r| r.key != 9), "{ready:?}");
    }
}
