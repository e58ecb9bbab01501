//! The network core: listeners, streams, framing and forwarding, with no Lua.
//!
//! Sockets are registered edge-triggered on the process's one poller, keyed
//! by slot index. The core turns readiness into buffered bytes and
//! [`Notice`]s; the Lua layer turns those into callbacks.

mod accept;
mod buffers;
pub mod calls;
mod connect;
pub mod error;
mod forward;
pub mod frame;
mod lifecycle;
mod manager;
mod publish;
pub mod resolver;
pub mod secure;
mod securing;
mod settings;
mod slots;
pub mod stream;

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::route::Token;
use crate::runtime::poller::Poller;
pub use crate::runtime::poller::Readiness;
use crate::runtime::timers::Timers;
pub use accept::Listener;
pub use buffers::{Input, ReadResult};
use calls::CallTracker;
pub use error::NetError;
use frame::Body;
pub use manager::{ConnectionInfo, Limits, Manager, Stats};
use resolver::Resolver;
use settings::NetTimer;
use slots::{Entry, Slots};
pub use stream::Framing;
use stream::{State, Stream};

/// Default largest message.
pub const DEFAULT_PACKAGE_SIZE: usize = 16 << 20;
/// Bytes read per receive call into the scratch buffer.
const READ_CHUNK: usize = 64 << 10;
/// How long a closed stream may take to flush what it queued.
const CLOSE_FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// Unsent bytes past which a stream is written at once instead of at the end of the pass.
const EARLY_FLUSH: usize = 1 << 20;
/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Default most bytes of unfinished frames a manager holds over all its streams.
pub const DEFAULT_MAX_PENDING_INPUT: usize = 256 << 20;
/// Default time a frame may take to arrive once it started.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Something the Lua layer must tell a script about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A listener accepted a stream.
    Accepted { listener: Token, stream: Token },
    /// A connect finished.
    Connected(Token),
    /// A connect failed (error, and what the system or the peer said); the stream is gone.
    ConnectFailed(Token, NetError, Option<String>),
    /// An open stream failed (error, and what the peer or TLS said); it is gone.
    Closed(Token, NetError, Option<String>),
}

/// What an event means for the Lua layer.
pub enum EventAction {
    /// Nothing more to do.
    Done,
    /// The stream has input: call [`NetCore::read`] and dispatch.
    Read(Token),
}

/// All sockets of the process and the managers that own them.
pub struct NetCore {
    poller: Arc<Poller>,
    slots: Slots,
    managers: Vec<Manager>,
    dirty: Vec<u32>,
    again: Vec<Token>,
    /// Reused list of a publish's receivers (a failed delivery closes its
    /// receiver, which changes the topic's own list while we walk it).
    fanout: Vec<Token>,
    notices: VecDeque<Notice>,
    timers: Timers<NetTimer>,
    scratch: Vec<u8>,
    /// Raw bytes of TLS streams, before decryption.
    tls_scratch: Vec<u8>,
    resolver: Resolver,
    refused_logged_at: Option<Instant>,
    /// Routed calls waiting for an answer.
    calls: CallTracker,
    /// The "too many tracked calls" warning was logged and not yet cleared.
    tracking_full_logged: bool,
}

impl NetCore {
    /// A core registering its sockets on `poller`.
    pub fn new(poller: Arc<Poller>) -> Self {
        NetCore {
            resolver: Resolver::new(Arc::clone(&poller)),
            poller,
            slots: Slots::default(),
            managers: Vec::new(),
            dirty: Vec::new(),
            again: Vec::new(),
            fanout: Vec::new(),
            notices: VecDeque::new(),
            timers: Timers::new(),
            scratch: Vec::with_capacity(READ_CHUNK),
            tls_scratch: Vec::new(),
            refused_logged_at: None,
            calls: CallTracker::new(),
            tracking_full_logged: false,
        }
    }

    fn slot(&self, token: Token) -> Option<&Entry> {
        self.slots.get(token)
    }

    fn slot_mut(&mut self, token: Token) -> Option<&mut Entry> {
        self.slots.get_mut(token)
    }

    /// The stream behind a token, if it is still open.
    pub fn stream(&mut self, token: Token) -> Option<&mut Stream> {
        match self.slots.get_mut(token) {
            Some(Entry::Stream(stream)) => Some(stream),
            _ => None,
        }
    }

    fn stream_ref(&self, token: Token) -> Option<&Stream> {
        match self.slots.get(token) {
            Some(Entry::Stream(stream)) => Some(stream),
            _ => None,
        }
    }

    fn stream_and_manager(&mut self, token: Token) -> Option<(&mut Stream, &mut Manager)> {
        match self.slots.get_mut(token) {
            Some(Entry::Stream(stream)) => {
                let manager = self.managers.get_mut(stream.mgr as usize)?;
                Some((stream, manager))
            }
            _ => None,
        }
    }

    /// The token of the socket registered under poller key `key`.
    pub fn token_at(&self, key: usize) -> Option<Token> {
        self.slots.token_at(key)
    }

    /// The listener behind a token, if it is still open.
    pub fn listener(&self, token: Token) -> Option<&Listener> {
        match self.slot(token) {
            Some(Entry::Listener(listener)) => Some(listener),
            _ => None,
        }
    }

    /// True while the token names a stream that takes input and output
    /// (not closed, and not closing after `close`).
    pub fn is_open(&self, token: Token) -> bool {
        matches!(self.slot(token), Some(Entry::Stream(stream)) if stream.state == State::Open)
    }

    /// True while the token names an open listener or stream.
    pub fn is_alive(&self, token: Token) -> bool {
        self.slot(token).is_some()
    }

    fn register(&self, fd: &impl AsRawFd, key: usize) -> io::Result<()> {
        // SAFETY: the socket stays registered only while its slot owns it;
        // `release` deletes it from the poller before dropping it.
        unsafe { self.poller.register(fd.as_raw_fd(), key) }
    }

    /// Handles a poller event for one key.
    pub fn handle_event(&mut self, ready: Readiness) -> EventAction {
        let Some(token) = self.token_at(ready.key) else {
            return EventAction::Done;
        };
        match self.slot(token) {
            Some(Entry::Listener(_)) => {
                self.accept_all(token);
                EventAction::Done
            }
            Some(Entry::Stream(stream)) => match stream.state {
                State::Resolving => EventAction::Done,
                State::Connecting => {
                    self.finish_connect(token);
                    EventAction::Done
                }
                State::Open | State::Closing => {
                    if ready.hangup
                        && let Some(stream) = self.stream(token)
                    {
                        stream.peer_done = true;
                    }
                    if ready.writable {
                        self.flush_stream(token);
                    }
                    if ready.readable && self.is_alive(token) {
                        EventAction::Read(token)
                    } else {
                        EventAction::Done
                    }
                }
            },
            None => EventAction::Done,
        }
    }

    /// The next notice for the Lua layer.
    pub fn pop_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }
}

/// Why a frame could not be queued.
#[derive(Debug)]
pub enum SendError<E> {
    /// The payload could not be encoded.
    Encode(E),
    /// A socket-level error string.
    Net(NetError),
}

/// Parses the next complete frame of `data[at..]`: its body and total length.
pub fn next_frame(data: &[u8], package_size: usize) -> Result<Option<(Body<'_>, usize)>, frame::FrameError> {
    match frame::complete_len(data, package_size)? {
        None => Ok(None),
        Some(total) => Ok(Some((frame::parse_body(&data[frame::PREFIX_LEN..total])?, total))),
    }
}
