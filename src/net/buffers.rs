//! Stream buffers: reading into them, queueing frames, writing them out.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::NetError;
use super::frame::{self, Header, Kind};
use super::slots::index_of;
use super::stream::{Flushed, State, Stream};
use super::{EARLY_FLUSH, Framing, NetCore, NetTimer, READ_CHUNK, SendError, Token};
use crate::log;
use crate::runtime::poller::SHORT_READ_DRAINS;

/// Bytes read from a stream, lent to the caller to cut frames from.
pub struct Input {
    /// Pending bytes: maybe frames, maybe a partial one at the end.
    pub data: Vec<u8>,
    from_scratch: bool,
    /// The read filled its buffer: there may be more to read.
    pub more: bool,
}

/// What reading a stream produced.
pub enum ReadResult {
    /// New bytes; give the buffer back with [`NetCore::give_back_input`].
    Data(Input),
    /// Nothing to read now.
    Drained,
    /// The stream closed (a notice is queued).
    Closed,
}

impl NetCore {
    /// Reads once from a stream; a full read queues it to be read again this pass.
    pub fn read(&mut self, token: Token) -> ReadResult {
        // The scratch buffer has no capacity while it is lent out.
        let scratch_free = self.scratch.capacity() > 0;
        let Some(stream) = self.stream(token) else {
            return ReadResult::Closed;
        };
        if stream.state == State::Closing {
            return self.discard_input(token);
        }
        let (mut data, from_scratch) = if stream.input.is_empty() && scratch_free {
            (std::mem::take(&mut self.scratch), true)
        } else {
            let Some(stream) = self.stream(token) else {
                return ReadResult::Closed;
            };
            (std::mem::take(&mut stream.input), false)
        };
        let Some(stream) = self.stream(token) else {
            return ReadResult::Closed;
        };
        if stream.tls.is_some() {
            return self.read_tls(token, data, from_scratch);
        }
        // Read a large frame in few reads once its length is known, but
        // reserve at most as much again as has arrived: a prefix alone
        // (which may declare up to the package size) must not make us
        // reserve megabytes the peer never sends. RESP has no prefix.
        let want = match frame::declared_len(&data) {
            Some(body) if !from_scratch && stream.framing == Framing::Luna => (frame::PREFIX_LEN + body)
                .saturating_sub(data.len())
                .min(data.len())
                .max(READ_CHUNK),
            _ => READ_CHUNK,
        };
        let before = data.len();
        let result = stream.recv_into(&mut data, want);
        match result {
            Ok(0) => {
                self.put_back(token, data, from_scratch);
                self.end_of_input(token);
                ReadResult::Closed
            }
            Ok(received) => {
                let filled = received == data.capacity() - before;
                let mut more = filled || !SHORT_READ_DRAINS;
                if let Some(stream) = self.stream(token) {
                    stream.last_recv = Instant::now();
                    stream.bytes_in += received as u64;
                    more |= stream.peer_done;
                }
                ReadResult::Data(Input {
                    data,
                    from_scratch,
                    more,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                self.put_back(token, data, from_scratch);
                ReadResult::Drained
            }
            Err(_) => {
                self.put_back(token, data, from_scratch);
                self.fail(token, NetError::ConnectionLost);
                ReadResult::Closed
            }
        }
    }

    /// Reads a TLS stream once: the raw bytes go through its session, the
    /// plaintext they carry is appended to `data`.
    fn read_tls(&mut self, token: Token, mut data: Vec<u8>, from_scratch: bool) -> ReadResult {
        let mut raw = std::mem::take(&mut self.tls_scratch);
        raw.clear();
        let Some(stream) = self.stream(token) else {
            return ReadResult::Closed;
        };
        let result = stream.recv_into(&mut raw, READ_CHUNK);
        let outcome = match (&result, stream.tls.as_mut()) {
            (Ok(received), Some(tls)) if *received > 0 => Some(tls.receive(&raw, &mut data)),
            _ => None,
        };
        let filled = matches!(result, Ok(received) if received == raw.capacity());
        raw.clear();
        self.tls_scratch = raw;
        match (result, outcome) {
            (Ok(received), Some(Ok(closed))) => {
                let Some(stream) = self.stream(token) else {
                    return ReadResult::Closed;
                };
                stream.last_recv = Instant::now();
                stream.bytes_in += received as u64;
                // After close_notify only the end of file can follow: read until it shows.
                stream.peer_done |= closed;
                let more = filled || !SHORT_READ_DRAINS || stream.peer_done;
                let securing = stream.secure.is_some();
                if stream.has_output() {
                    self.mark_dirty(token); // handshake records, or output that waited for them
                }
                if securing {
                    self.advance_securing(token);
                }
                ReadResult::Data(Input {
                    data,
                    from_scratch,
                    more,
                })
            }
            (Ok(_), Some(Err(why))) => {
                self.put_back(token, data, from_scratch);
                if let Some(stream) = self.stream(token) {
                    let _ = stream.flush(); // best effort: the alert that tells the peer why
                }
                if self.is_securing(token) {
                    self.securing_failed(token, NetError::TlsFailed, &why);
                } else {
                    self.log_closing(token, NetError::TlsFailed, &why);
                    self.count(token, |stats| stats.tls_failed += 1);
                    self.fail_with(token, NetError::TlsFailed, Some(why));
                }
                ReadResult::Closed
            }
            (Ok(_), None) => {
                self.put_back(token, data, from_scratch);
                self.end_of_input(token);
                ReadResult::Closed
            }
            (Err(e), _) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                self.put_back(token, data, from_scratch);
                ReadResult::Drained
            }
            (Err(_), _) => {
                self.put_back(token, data, from_scratch);
                self.fail(token, NetError::ConnectionLost);
                ReadResult::Closed
            }
        }
    }

    /// The peer's end of file.
    fn end_of_input(&mut self, token: Token) {
        if self.is_securing(token) {
            self.closed_while_securing(token);
        } else {
            self.peer_closed(token);
        }
    }

    // A closing stream's input is read and dropped. At the peer's end of
    // file it closes, unless output is still queued: a peer that half-closed
    // may still read it, and the flush closes the stream when done.
    pub(super) fn discard_input(&mut self, token: Token) -> ReadResult {
        let mut sink = std::mem::take(&mut self.scratch);
        loop {
            sink.clear();
            let Some(stream) = self.stream(token) else { break };
            match stream.recv_into(&mut sink, READ_CHUNK) {
                Ok(0) => {
                    if stream.unsent() == 0 {
                        self.release(token);
                    }
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.release(token);
                    break;
                }
            }
        }
        sink.clear();
        self.scratch = sink;
        ReadResult::Drained
    }

    pub(super) fn put_back(&mut self, token: Token, mut data: Vec<u8>, from_scratch: bool) {
        if from_scratch {
            data.clear();
            self.scratch = data;
        } else if let Some(stream) = self.stream(token) {
            stream.input = data;
        }
    }

    /// Keeps the unfinished frame `rest` as the stream's pending input:
    /// counts it against the manager's cap and starts or stops the frame's
    /// deadline. `frame_done` says a frame completed since the last call, so
    /// `rest` is a new frame.
    fn keep_input(&mut self, token: Token, rest: Vec<u8>, frame_done: bool) {
        let now = Instant::now();
        let Some((stream, manager)) = self.stream_and_manager(token) else {
            return;
        };
        manager.pending_input = manager.pending_input - stream.accounted_input + rest.len();
        stream.accounted_input = rest.len();
        let over_cap = manager.pending_input > manager.limits.max_pending_input;
        let frame_timeout = manager.limits.frame_timeout;
        let mgr = stream.mgr;
        if rest.is_empty() {
            stream.frame_started = None;
        } else if frame_done || stream.frame_started.is_none() {
            stream.frame_started = Some(now);
        }
        let arm = match (frame_timeout, stream.frame_started, stream.frame_timer) {
            (Some(timeout), Some(started), None) => Some(started + timeout),
            _ => None,
        };
        stream.input = rest;
        if let Some(due) = arm {
            let timer = self.timers.add_at(due, None, NetTimer::Frame(token));
            if let Some(stream) = self.stream(token) {
                stream.frame_timer = Some(timer);
            }
        }
        if over_cap {
            self.shed_pending_input(mgr);
        }
    }

    /// The manager holds more unfinished frames than its cap: closes the
    /// streams holding the most until it is under the cap again.
    fn shed_pending_input(&mut self, mgr: u32) {
        loop {
            let Some(manager) = self.managers.get(mgr as usize) else {
                return;
            };
            if manager.pending_input <= manager.limits.max_pending_input {
                return;
            }
            let cap = manager.limits.max_pending_input;
            let biggest = self
                .slots
                .streams()
                .filter(|(_, stream)| stream.mgr == mgr && stream.accounted_input > 0)
                .map(|(token, stream)| (stream.accounted_input, token))
                .max();
            let Some((bytes, token)) = biggest else { return };
            let peer = self
                .stream(token)
                .map(|s| format!("{}:{}", s.ip, s.port))
                .unwrap_or_default();
            log::warn(&format!(
                "closing stream {token} ({peer}): recv-buffer-full (it holds {bytes} bytes of an unfinished frame \
                 and the manager's streams hold more than {cap} such bytes)"
            ));
            if let Some(manager) = self.managers.get_mut(mgr as usize) {
                manager.stats.recv_buffer_full += 1;
            }
            self.fail(token, NetError::RecvBufferFull);
        }
    }

    /// The frame deadline of a stream came: closes it if the same frame is still unfinished.
    pub(super) fn check_frame_deadline(&mut self, token: Token, now: Instant) {
        let Some((stream, manager)) = self.stream_and_manager(token) else {
            return;
        };
        stream.frame_timer = None;
        let (Some(started), Some(timeout)) = (stream.frame_started, manager.limits.frame_timeout) else {
            return;
        };
        if stream.state != State::Open {
            return;
        }
        if started + timeout > now {
            let timer = self.timers.add_at(started + timeout, None, NetTimer::Frame(token));
            if let Some(stream) = self.stream(token) {
                stream.frame_timer = Some(timer);
            }
            return;
        }
        let (peer, bytes) = (format!("{}:{}", stream.ip, stream.port), stream.accounted_input);
        manager.stats.frame_timeouts += 1;
        log::warn(&format!(
            "closing stream {token} ({peer}): timeout (a frame started {} ms ago is still unfinished, \
             {bytes} bytes received)",
            timeout.as_millis()
        ));
        self.fail(token, NetError::Timeout);
    }

    /// Returns a buffer lent by [`NetCore::read`]; bytes past `consumed` stay pending.
    pub fn give_back_input(&mut self, token: Token, input: Input, consumed: usize) {
        let Input {
            mut data,
            from_scratch,
            more,
        } = input;
        let rest = if from_scratch {
            let rest = data.get(consumed..).map(<[u8]>::to_vec).unwrap_or_default();
            data.clear();
            self.scratch = data;
            rest
        } else if consumed >= data.len() {
            Vec::new()
        } else {
            data.drain(..consumed);
            data
        };
        self.keep_input(token, rest, consumed > 0);
        if more && self.is_alive(token) {
            self.again.push(token);
        }
    }

    /// Streams whose last read filled the buffer, to read again this pass.
    pub fn take_again(&mut self) -> Vec<Token> {
        std::mem::take(&mut self.again)
    }

    /// True when some stream still has unread input or a notice is waiting.
    pub fn has_immediate_work(&self) -> bool {
        !self.again.is_empty() || !self.notices.is_empty()
    }

    /// Appends a frame built by `write` to the stream's output, enforcing the
    /// package size on the payload and the send buffer limit.
    pub fn send_with<E>(
        &mut self,
        token: Token,
        kind: Kind,
        header: Header,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, SendError<E>> {
        let Some((stream, manager)) = self.stream_and_manager(token) else {
            return Err(SendError::Net(NetError::Closed));
        };
        if stream.state == State::Closing {
            return Err(SendError::Net(NetError::Closed));
        }
        let package_size = manager.package_size;
        let out = stream.output_mut();
        let start = frame::begin(out, kind);
        header.push(out);
        let payload_start = out.len();
        if let Err(error) = write(out) {
            stream.discard_output(start);
            return Err(SendError::Encode(error));
        }
        if out.len() - payload_start > package_size {
            stream.discard_output(start);
            return Err(SendError::Net(NetError::PackageTooLarge));
        }
        frame::finish(out, start);
        self.queued(token, start).map_err(SendError::Net)
    }

    /// Appends bytes built by `write` with no luna framing (for RESP streams),
    /// enforcing the send buffer limit.
    pub fn send_raw<E>(
        &mut self,
        token: Token,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, SendError<E>> {
        let Some(stream) = self.stream(token).filter(|s| s.state != State::Closing) else {
            return Err(SendError::Net(NetError::Closed));
        };
        let out = stream.output_mut();
        let start = out.len();
        if let Err(error) = write(out) {
            stream.discard_output(start);
            return Err(SendError::Encode(error));
        }
        self.queued(token, start).map_err(SendError::Net)
    }

    /// Accepts what the stream's output got since `start` and schedules its
    /// write: at once past a large backlog, else at the end of the pass. A
    /// stream past its send buffer size fails with `send-buffer-full`.
    pub(super) fn queued(&mut self, token: Token, start: usize) -> Result<usize, NetError> {
        let Some(stream) = self.stream(token) else {
            return Err(NetError::Closed);
        };
        match stream.commit_output(start) {
            Ok(size) => {
                if stream.unsent() >= EARLY_FLUSH && !stream.write_blocked && stream.state == State::Open {
                    self.flush_stream(token);
                } else {
                    self.mark_dirty(token);
                }
                Ok(size)
            }
            Err(error) => {
                self.fail(token, error);
                Err(error)
            }
        }
    }

    pub(super) fn mark_dirty(&mut self, token: Token) {
        let index = index_of(token) as u32;
        if let Some(stream) = self.stream(token)
            && !stream.dirty
            && !stream.write_blocked
        {
            stream.dirty = true;
            self.dirty.push(index);
        }
    }

    /// Writes every stream with output queued this pass.
    pub fn flush_dirty(&mut self) {
        // Flushing never marks streams dirty, so the list is stable while we walk it.
        for at in 0..self.dirty.len() {
            let Some(token) = self.token_at(self.dirty[at] as usize) else {
                continue;
            };
            if let Some(stream) = self.stream(token)
                && stream.dirty
            {
                stream.dirty = false;
                self.flush_stream(token);
            }
        }
        self.dirty.clear();
    }

    pub(super) fn flush_stream(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        if !matches!(stream.state, State::Open | State::Closing) {
            return;
        }
        stream.write_blocked = false;
        match stream.flush() {
            Flushed::All => {
                if stream.state == State::Closing {
                    self.release(token);
                }
            }
            Flushed::Blocked => {}
            Flushed::Failed => {
                if stream.state == State::Closing {
                    self.release(token);
                } else {
                    self.fail(token, NetError::ConnectionLost);
                }
            }
        }
    }

    /// True while any stream has output not yet written.
    pub fn has_unsent_output(&self) -> bool {
        self.slots.streams().any(|(_, stream)| {
            stream.unsent() > 0 && matches!(stream.state, State::Open | State::Closing | State::Connecting)
        })
    }

    /// Waits (bounded by `deadline`) until the kernel has no unacknowledged
    /// output left on any stream, so closing at exit loses nothing.
    pub fn wait_until_acknowledged(&self, deadline: Instant) -> bool {
        loop {
            let waiting = self.slots.streams().any(|(_, stream)| match stream {
                Stream {
                    socket: Some(socket),
                    state: State::Open | State::Closing,
                    ..
                } => unacknowledged_bytes(socket) > 0,
                _ => false,
            });
            if !waiting {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Marks every stream with output for flushing (used when quitting).
    pub fn mark_all_dirty(&mut self) {
        let tokens: Vec<Token> = self
            .slots
            .streams()
            .filter(|(_, stream)| stream.unsent() > 0)
            .map(|(token, _)| token)
            .collect();
        for token in tokens {
            self.mark_dirty(token);
        }
    }
}

/// Bytes the kernel holds for a socket that the peer has not acknowledged.
#[cfg(target_os = "linux")]
fn unacknowledged_bytes(socket: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int for a TCP socket.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc == 0 { queued } else { 0 }
}

#[cfg(not(target_os = "linux"))]
fn unacknowledged_bytes(_socket: &TcpStream) -> i32 {
    0
}
