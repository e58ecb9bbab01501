//! Per-stream settings (idle timeout, nodelay, buffer sizes) and the core's
//! own deadlines: connects, closing flushes, idle streams, frames,
//! handshakes, accept retries.

use std::time::{Duration, Instant};

use socket2::SockRef;

use super::stream::{Framing, State};
use super::{NetCore, NetError, Token};
use crate::log;

/// Internal deadlines of the core.
#[derive(Clone, Copy, Debug)]
pub(super) enum NetTimer {
    Deadline(Token),
    Idle(Token),
    AcceptRetry(Token),
    Frame(Token),
    Secure(Token),
}

impl NetCore {
    /// How a stream's bytes are cut into messages.
    pub fn framing_of(&self, token: Token) -> Framing {
        self.stream_ref(token).map_or(Framing::Luna, |stream| stream.framing)
    }

    /// Sets (or with 0 clears) the idle timeout of a stream.
    pub fn set_idle_timeout(&mut self, token: Token, timeout: Duration) -> bool {
        let Some(stream) = self.stream(token) else { return false };
        let old = stream.idle_timer.take();
        stream.idle_timeout = (!timeout.is_zero()).then_some(timeout);
        stream.last_recv = Instant::now();
        if let Some(old) = old {
            self.timers.cancel(old);
        }
        if !timeout.is_zero() {
            let timer = self
                .timers
                .add_at(Instant::now() + timeout, None, NetTimer::Idle(token));
            if let Some(stream) = self.stream(token) {
                stream.idle_timer = Some(timer);
            }
        }
        true
    }

    /// Applies TCP_NODELAY now or once connected.
    pub fn set_nodelay(&mut self, token: Token, nodelay: bool) -> bool {
        let Some(stream) = self.stream(token) else { return false };
        stream.nodelay = nodelay;
        if let Some(socket) = &stream.socket {
            let _ = socket.set_nodelay(nodelay);
        }
        true
    }

    /// Sets the kernel receive buffer (SO_RCVBUF).
    pub fn set_recv_buffer_size(&mut self, token: Token, bytes: usize) -> bool {
        let Some(stream) = self.stream(token) else { return false };
        if let Some(socket) = &stream.socket {
            let _ = SockRef::from(socket).set_recv_buffer_size(bytes);
        }
        true
    }

    /// Sets the most unsent output the stream may hold.
    pub fn set_send_buffer_size(&mut self, token: Token, bytes: usize) -> bool {
        let Some(stream) = self.stream(token) else { return false };
        stream.send_limit = bytes;
        true
    }

    /// The earliest internal deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Runs finished name lookups and due internal deadlines.
    pub fn run_timers(&mut self, now: Instant) {
        self.connect_resolved();
        while let Some((_, timer)) = self.timers.pop_due(now) {
            match timer {
                NetTimer::Deadline(token) => {
                    let Some(stream) = self.stream(token) else { continue };
                    stream.deadline_timer = None;
                    match stream.state {
                        State::Resolving | State::Connecting => self.fail(token, NetError::Timeout),
                        State::Closing => {
                            log::warn(&format!(
                                "stream {token} closed with {} bytes unsent: the peer did not read them in time",
                                stream.unsent()
                            ));
                            self.release(token);
                        }
                        State::Open => {}
                    }
                }
                NetTimer::Idle(token) => {
                    let Some(stream) = self.stream(token) else { continue };
                    let Some(timeout) = stream.idle_timeout else { continue };
                    stream.idle_timer = None;
                    let due = stream.last_recv + timeout;
                    if stream.state != State::Open {
                        continue;
                    }
                    if due <= now {
                        self.fail(token, NetError::Timeout);
                    } else {
                        let timer = self.timers.add_at(due, None, NetTimer::Idle(token));
                        if let Some(stream) = self.stream(token) {
                            stream.idle_timer = Some(timer);
                        }
                    }
                }
                NetTimer::AcceptRetry(token) => {
                    if self.listener(token).is_some() {
                        self.accept_all(token);
                    }
                }
                NetTimer::Frame(token) => self.check_frame_deadline(token, now),
                NetTimer::Secure(token) => self.handshake_timed_out(token),
            }
        }
    }
}
