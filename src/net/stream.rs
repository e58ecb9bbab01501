//! One TCP connection: its socket, its pending input and its unsent output.
//!
//! Buffers are allocated only while they hold bytes, so an idle stream costs
//! no buffer memory: complete frames are read through a shared scratch
//! buffer and only the bytes of an unfinished frame are kept here.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::NetError;
use super::secure::Securing;
use super::secure::tls::TlsSession;
use crate::runtime::timers::TimerId;

/// Default limit of unsent output per stream.
pub const DEFAULT_SEND_BUFFER: usize = 64 << 20;
/// Output buffers larger than this are freed once flushed.
const KEEP_OUTPUT_CAPACITY: usize = 256 << 10;

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for the host name to resolve.
    Resolving,
    /// Non-blocking connect in progress.
    Connecting,
    /// Connected; reads and writes flow.
    Open,
    /// Closed by the script: flushing what was queued, then closing.
    Closing,
}

impl State {
    /// The state's name, for listings.
    pub fn name(self) -> &'static str {
        match self {
            State::Resolving => "resolving",
            State::Connecting => "connecting",
            State::Open => "open",
            State::Closing => "closing",
        }
    }
}

/// How the bytes of a stream are cut into messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// luna frames (docs/protocol.md).
    Luna,
    /// Redis RESP2: commands out, replies in.
    Resp,
    /// Bytes as they come (`on_data`), for text protocols such as HTTP or a console.
    Raw,
}

impl Framing {
    /// The framing a script names in the options of listen/connect.
    pub fn from_name(name: &str) -> Option<Framing> {
        match name {
            "luna" => Some(Framing::Luna),
            "raw" => Some(Framing::Raw),
            _ => None,
        }
    }
}

/// The result of one write attempt.
pub enum Flushed {
    /// Everything queued is on the wire.
    All,
    /// The socket is full; the rest waits for a writable event.
    Blocked,
    /// The connection broke.
    Failed,
}

/// A connection and its buffers.
pub struct Stream {
    /// Index of the manager that owns it.
    pub mgr: u32,
    /// Life-cycle state.
    pub state: State,
    /// The socket, absent while resolving.
    pub socket: Option<TcpStream>,
    /// The peer's address text (or the host asked for, before connecting).
    pub ip: String,
    /// The peer's port.
    pub port: u16,
    /// When the stream was created.
    pub created: Instant,
    /// Bytes received so far.
    pub bytes_in: u64,
    /// Bytes written so far.
    pub bytes_out: u64,
    /// Bytes of an unfinished frame.
    pub input: Vec<u8>,
    /// The length of `input` as counted in the manager's pending input.
    pub accounted_input: usize,
    /// When the unfinished frame in `input` started to arrive.
    pub frame_started: Option<Instant>,
    /// The timer checking the frame deadline.
    pub frame_timer: Option<TimerId>,
    output: Vec<u8>,
    out_pos: usize,
    /// A write hit EAGAIN: wait for the writable event before writing again.
    pub write_blocked: bool,
    /// Listed for the end-of-pass flush.
    pub dirty: bool,
    /// Most unsent output allowed before `send-buffer-full`.
    pub send_limit: usize,
    /// Close when nothing was received for this long.
    pub idle_timeout: Option<Duration>,
    /// When bytes last arrived.
    pub last_recv: Instant,
    /// The timer checking the idle timeout.
    pub idle_timer: Option<TimerId>,
    /// The connect or close deadline.
    pub deadline_timer: Option<TimerId>,
    /// TCP_NODELAY wanted (applied once connected).
    pub nodelay: bool,
    /// How the bytes are framed.
    pub framing: Framing,
    /// The poller reported the peer's end of file: read until it shows.
    pub peer_done: bool,
    /// Accepted by a listener (not connected by us): its failures are only
    /// logged, as its script may never have seen it.
    pub accepted: bool,
    /// The link's handshakes, while it is being secured.
    pub secure: Option<Box<Securing>>,
    /// The TLS session of a TLS stream.
    pub tls: Option<Box<TlsSession>>,
    /// Frames the script queued while the link is being secured: they leave
    /// once it is (handshake frames go straight to `output`).
    held: Option<Vec<u8>>,
}

impl Stream {
    /// A stream in `state` owned by manager `mgr`.
    pub fn new(mgr: u32, state: State, socket: Option<TcpStream>, ip: String, port: u16) -> Self {
        Stream {
            mgr,
            state,
            socket,
            ip,
            port,
            created: Instant::now(),
            bytes_in: 0,
            bytes_out: 0,
            input: Vec::new(),
            accounted_input: 0,
            frame_started: None,
            frame_timer: None,
            output: Vec::new(),
            out_pos: 0,
            write_blocked: false,
            dirty: false,
            send_limit: DEFAULT_SEND_BUFFER,
            idle_timeout: None,
            last_recv: Instant::now(),
            idle_timer: None,
            deadline_timer: None,
            nodelay: true,
            framing: Framing::Luna,
            peer_done: false,
            accepted: false,
            secure: None,
            tls: None,
            held: None,
        }
    }

    /// Starts securing the link: until [`Stream::secured`], the script's frames are held back.
    pub fn start_securing(&mut self, securing: Securing) {
        self.secure = Some(Box::new(securing));
        self.held = Some(Vec::new());
    }

    /// The link is secured: the frames held back follow the handshake.
    pub fn secured(&mut self) -> Option<Box<Securing>> {
        if let Some(held) = self.held.take() {
            self.output.extend_from_slice(&held);
        }
        self.secure.take()
    }

    /// Bytes queued but not yet written.
    pub fn unsent(&self) -> usize {
        self.output.len() - self.out_pos + self.held.as_ref().map_or(0, Vec::len)
    }

    /// True while anything waits to be written (TLS records included).
    pub fn has_output(&self) -> bool {
        self.unsent() > 0 || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// The buffer the script's frames go to, compacted so appends do not grow it without bound.
    pub fn output_mut(&mut self) -> &mut Vec<u8> {
        if let Some(held) = self.held.as_mut() {
            return held;
        }
        if self.out_pos > 0 && self.out_pos >= self.output.len() / 2 {
            self.output.drain(..self.out_pos);
            self.out_pos = 0;
        }
        &mut self.output
    }

    /// Queues handshake bytes ahead of anything held back.
    pub fn push_handshake(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// The buffer `output_mut` returned, without compacting it (offsets stay valid).
    fn appended(&mut self) -> &mut Vec<u8> {
        self.held.as_mut().unwrap_or(&mut self.output)
    }

    /// Accepts the frame written at `output_mut()[start..]` unless it breaks the send limit.
    pub fn commit_output(&mut self, start: usize) -> Result<usize, NetError> {
        let unsent = self.unsent();
        let limit = self.send_limit;
        let buffer = self.appended();
        let size = buffer.len() - start;
        if unsent > limit {
            buffer.truncate(start);
            return Err(NetError::SendBufferFull);
        }
        Ok(size)
    }

    /// Drops a frame written at `output_mut()[start..]`.
    pub fn discard_output(&mut self, start: usize) {
        self.appended().truncate(start);
    }

    /// Reads once into the spare capacity of `buf`. `Ok(0)` is end of stream.
    pub fn recv_into(&self, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
        let Some(socket) = &self.socket else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        buf.reserve(want);
        let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
        let received = socket2::SockRef::from(socket).recv(spare)?;
        // SAFETY: recv initialised exactly `received` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + received) };
        Ok(received)
    }

    /// Writes queued output until done or the socket is full.
    pub fn flush(&mut self) -> Flushed {
        let Some(mut socket) = self.socket.as_ref() else {
            return Flushed::Blocked;
        };
        if let Some(tls) = self.tls.as_mut() {
            let (taken, result) = tls.write(&mut socket, &self.output[self.out_pos..]);
            self.out_pos += taken;
            self.bytes_out += taken as u64;
            match result {
                Ok(()) if self.out_pos < self.output.len() || tls.wants_write() => return Flushed::Blocked,
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Flushed::Blocked;
                }
                Err(_) => return Flushed::Failed,
            }
        }
        while self.out_pos < self.output.len() {
            match socket.write(&self.output[self.out_pos..]) {
                Ok(0) => return Flushed::Failed,
                Ok(written) => {
                    self.out_pos += written;
                    self.bytes_out += written as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    return Flushed::Blocked;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Flushed::Failed,
            }
        }
        self.out_pos = 0;
        if self.output.capacity() > KEEP_OUTPUT_CAPACITY {
            self.output = Vec::new();
        } else {
            self.output.clear();
        }
        Flushed::All
    }
}
