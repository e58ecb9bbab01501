//! The network core: listeners, streams, framing and forwarding, with no Lua.
//!
//! Sockets are registered edge-triggered on the process's one poller, keyed
//! by slot index. The core turns readiness into buffered bytes and
//! [`Notice`]s; the Lua layer turns those into callbacks.

mod accept;
mod buffers;
pub mod calls;
mod connect;
pub mod errors;
mod forward;
pub mod frame;
pub mod resolver;
pub mod secure;
mod securing;
pub mod stream;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::Poller;
use socket2::SockRef;

use crate::log;
use crate::route::RouteTable;
use crate::runtime::timers::Timers;
pub use crate::runtime::waiter::Readiness;
use crate::runtime::waiter::register_edge;
pub use accept::Listener;
pub use buffers::{Input, ReadResult};
use calls::CallTracker;
use frame::Body;
use resolver::Resolver;
pub use stream::Framing;
use stream::{State, Stream};

/// Identifies a listener or stream for the life of the process (never 0).
pub type Token = u64;

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
    ConnectFailed(Token, &'static str, Option<String>),
    /// An open stream failed (error, and what the peer or TLS said); it is gone.
    Closed(Token, &'static str, Option<String>),
}

/// Counters a script can read from its manager.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    /// Frames passed on by this router.
    pub forwarded: u64,
    /// Forwards reported back as undeliverable.
    pub forward_failed: u64,
    /// Streams closed for a malformed or oversized frame.
    pub bad_packages: u64,
    /// Forwarded messages that arrived undecodable and were dropped.
    pub bad_deliveries: u64,
    /// Connections refused because `max_fd` was reached.
    pub refused: u64,
    /// Messages dropped because the stream had no handler.
    pub unhandled: u64,
    /// Tracked calls refused with `too-many-calls`.
    pub calls_refused: u64,
    /// Streams closed with `recv-buffer-full` (too many partial bytes on the manager).
    pub recv_buffer_full: u64,
    /// Streams closed because a frame did not complete within the frame timeout.
    pub frame_timeouts: u64,
    /// Route registrations refused with `too-many-ids`.
    pub ids_refused: u64,
    /// Links closed because the secret handshake failed or came too late.
    pub auth_failed: u64,
    /// Links closed because TLS failed.
    pub tls_failed: u64,
}

impl Manager {
    /// Every counter and gauge of the manager by name (`mgr.stats()`, metrics).
    pub fn counters(&self) -> [(&'static str, u64); 16] {
        let s = &self.stats;
        [
            ("forwarded", s.forwarded),
            ("forward_failed", s.forward_failed),
            ("bad_packages", s.bad_packages),
            ("bad_deliveries", s.bad_deliveries),
            ("refused", s.refused),
            ("unhandled", s.unhandled),
            ("calls_refused", s.calls_refused),
            ("recv_buffer_full", s.recv_buffer_full),
            ("frame_timeouts", s.frame_timeouts),
            ("ids_refused", s.ids_refused),
            ("auth_failed", s.auth_failed),
            ("tls_failed", s.tls_failed),
            ("open", self.open as u64),
            ("pending_input", self.pending_input as u64),
            ("tracked_calls", self.tracked_calls as u64),
            ("max_fd", self.max_fd as u64),
        ]
    }
}

/// One open listener or stream, as the debug console lists it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Its token.
    pub token: Token,
    /// Index of its manager.
    pub mgr: u32,
    /// "listener", or the stream's state ("open", "closing", "connecting"...).
    pub state: &'static str,
    /// Peer (or bound) address.
    pub ip: String,
    /// Peer (or bound) port.
    pub port: u16,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Bytes queued, not yet written.
    pub unsent: usize,
    /// Time since it was opened.
    pub age: Duration,
}

/// Bounds on what the peers of one manager can make it hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most calls one connection may have tracked by this router at once.
    pub max_tracked_calls: usize,
    /// Most bytes of unfinished frames over all streams of the manager.
    pub max_pending_input: usize,
    /// How long a frame may take to arrive once its first byte did (None: no limit).
    pub frame_timeout: Option<Duration>,
    /// Most service ids one stream may hold in the route table.
    pub max_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tracked_calls: calls::DEFAULT_MAX_PER_CALLER,
            max_pending_input: DEFAULT_MAX_PENDING_INPUT,
            frame_timeout: Some(DEFAULT_FRAME_TIMEOUT),
            max_ids: crate::route::DEFAULT_MAX_IDS,
        }
    }
}

/// A socket manager: a limit, a package size, a route table and counters.
pub struct Manager {
    /// Most listeners and streams open at once.
    pub max_fd: usize,
    /// Listeners and streams open now.
    pub open: usize,
    /// Largest message accepted or sent.
    pub package_size: usize,
    /// Routes used for forwards arriving on this manager's streams.
    pub routes: RouteTable,
    /// Counters.
    pub stats: Stats,
    /// Caps on what peers can make the manager hold.
    pub limits: Limits,
    /// Bytes of unfinished frames held by its streams now.
    pub pending_input: usize,
    /// Calls its streams made that the router tracks now.
    pub tracked_calls: usize,
}

// Streams sit inline in the slot table (one less pointer chase per event);
// listeners are few, so the space they waste does not matter.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Listener(Listener),
    Stream(Stream),
}

struct Slot {
    generation: u32,
    socket: Option<Entry>,
}

/// Internal deadlines of the core.
#[derive(Clone, Copy, Debug)]
enum NetTimer {
    Deadline(Token),
    Idle(Token),
    AcceptRetry(Token),
    Frame(Token),
    Secure(Token),
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
    slots: Vec<Slot>,
    free: Vec<u32>,
    managers: Vec<Manager>,
    dirty: Vec<u32>,
    again: Vec<Token>,
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

fn token_of(index: u32, generation: u32) -> Token {
    u64::from(generation) << 32 | u64::from(index)
}

fn index_of(token: Token) -> usize {
    (token & 0xffff_ffff) as usize
}

impl NetCore {
    /// A core registering its sockets on `poller`.
    pub fn new(poller: Arc<Poller>) -> Self {
        NetCore {
            resolver: Resolver::new(Arc::clone(&poller)),
            poller,
            slots: Vec::new(),
            free: Vec::new(),
            managers: Vec::new(),
            dirty: Vec::new(),
            again: Vec::new(),
            notices: VecDeque::new(),
            timers: Timers::new(),
            scratch: Vec::with_capacity(READ_CHUNK),
            tls_scratch: Vec::new(),
            refused_logged_at: None,
            calls: CallTracker::new(),
            tracking_full_logged: false,
        }
    }

    /// Creates a manager bounded to `max_fd` open sockets; returns its index.
    pub fn create_manager(&mut self, max_fd: usize) -> u32 {
        self.managers.push(Manager {
            max_fd,
            open: 0,
            package_size: DEFAULT_PACKAGE_SIZE,
            routes: RouteTable::new(),
            stats: Stats::default(),
            limits: Limits::default(),
            pending_input: 0,
            tracked_calls: 0,
        });
        (self.managers.len() - 1) as u32
    }

    /// A manager by index.
    pub fn manager(&mut self, mgr: u32) -> Option<&mut Manager> {
        self.managers.get_mut(mgr as usize)
    }

    /// Every manager, with the calls its streams have tracked counted in.
    pub fn managers(&mut self) -> &[Manager] {
        for manager in &mut self.managers {
            manager.tracked_calls = 0;
        }
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(Entry::Stream(stream)) = &slot.socket {
                let token = token_of(index as u32, slot.generation);
                self.managers[stream.mgr as usize].tracked_calls += self.calls.count_of(token);
            }
        }
        &self.managers
    }

    /// Every open listener and stream.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let now = Instant::now();
        let mut list = Vec::new();
        for (index, slot) in self.slots.iter().enumerate() {
            let token = token_of(index as u32, slot.generation);
            match &slot.socket {
                Some(Entry::Listener(listener)) => list.push(ConnectionInfo {
                    token,
                    mgr: listener.mgr,
                    state: "listener",
                    ip: listener.ip.clone(),
                    port: listener.port,
                    bytes_in: 0,
                    bytes_out: 0,
                    unsent: 0,
                    age: Duration::ZERO,
                }),
                Some(Entry::Stream(stream)) => list.push(ConnectionInfo {
                    token,
                    mgr: stream.mgr,
                    state: if stream.secure.is_some() {
                        "securing"
                    } else {
                        stream.state.name()
                    },
                    ip: stream.ip.clone(),
                    port: stream.port,
                    bytes_in: stream.bytes_in,
                    bytes_out: stream.bytes_out,
                    unsent: stream.unsent(),
                    age: now.saturating_duration_since(stream.created),
                }),
                None => {}
            }
        }
        list
    }

    fn slot(&self, token: Token) -> Option<&Entry> {
        let slot = self.slots.get(index_of(token))?;
        if token_of(index_of(token) as u32, slot.generation) != token {
            return None;
        }
        slot.socket.as_ref()
    }

    fn slot_mut(&mut self, token: Token) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(index_of(token))?;
        if token_of(index_of(token) as u32, slot.generation) != token {
            return None;
        }
        slot.socket.as_mut()
    }

    /// The stream behind a token, if it is still open.
    pub fn stream(&mut self, token: Token) -> Option<&mut Stream> {
        match self.slot_mut(token) {
            Some(Entry::Stream(stream)) => Some(stream),
            _ => None,
        }
    }

    fn stream_and_manager(&mut self, token: Token) -> Option<(&mut Stream, &mut Manager)> {
        let index = index_of(token);
        let slot = self.slots.get_mut(index)?;
        if token_of(index as u32, slot.generation) != token {
            return None;
        }
        match slot.socket.as_mut() {
            Some(Entry::Stream(stream)) => {
                let manager = self.managers.get_mut(stream.mgr as usize)?;
                Some((stream, manager))
            }
            _ => None,
        }
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

    /// The token of the socket registered under poller key `key`.
    pub fn token_at(&self, key: usize) -> Option<Token> {
        let slot = self.slots.get(key)?;
        slot.socket.as_ref()?;
        Some(token_of(key as u32, slot.generation))
    }

    fn insert(&mut self, socket: Entry) -> Token {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 1,
                    socket: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.socket = Some(socket);
        token_of(index, slot.generation)
    }

    fn has_room(&self, mgr: u32) -> Result<(), &'static str> {
        let manager = self.managers.get(mgr as usize).ok_or(errors::INVALID_PARAM)?;
        if manager.open >= manager.max_fd {
            return Err(errors::TOO_MANY_CONNECTION);
        }
        Ok(())
    }

    fn register(&self, fd: &impl std::os::fd::AsRawFd, key: usize) -> io::Result<()> {
        // SAFETY: the socket stays registered only while its slot owns it;
        // `release` deletes it from the poller before dropping it.
        unsafe { register_edge(&self.poller, fd.as_raw_fd(), key) }
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

    /// The package size of the stream's manager.
    pub fn package_size_of(&self, token: Token) -> usize {
        match self.slot(token) {
            Some(Entry::Stream(stream)) => self.managers[stream.mgr as usize].package_size,
            _ => DEFAULT_PACKAGE_SIZE,
        }
    }

    /// The counters of the stream's manager.
    pub fn manager_stats(&self, token: Token) -> Option<&Stats> {
        match self.slot(token) {
            Some(Entry::Stream(stream)) => self.managers.get(stream.mgr as usize).map(|m| &m.stats),
            _ => None,
        }
    }

    /// Counts an event on the stream's manager.
    pub fn count(&mut self, token: Token, counter: impl FnOnce(&mut Stats)) {
        if let Some(Entry::Stream(stream)) = self.slot(token) {
            let mgr = stream.mgr as usize;
            counter(&mut self.managers[mgr].stats);
        }
    }

    /// How a stream's bytes are cut into messages.
    pub fn framing_of(&self, token: Token) -> Framing {
        match self.slot(token) {
            Some(Entry::Stream(stream)) => stream.framing,
            _ => Framing::Luna,
        }
    }

    /// Closes a listener or stream at the script's request: a stream first
    /// flushes what it queued (bounded by a deadline). No notice follows.
    pub fn close(&mut self, token: Token) -> bool {
        if let Some(Entry::Stream(stream)) = self.slot_mut(token)
            && stream.state == State::Open
            && stream.secure.is_none()
            && let Some(tls) = stream.tls.as_mut()
        {
            tls.close(); // close_notify, written by the closing flush
        }
        match self.slot_mut(token) {
            Some(Entry::Stream(stream)) if stream.state == State::Open && stream.has_output() => {
                stream.state = State::Closing;
                let old = stream.deadline_timer.take();
                if let Some(old) = old {
                    self.timers.cancel(old);
                }
                let timer = self
                    .timers
                    .add_at(Instant::now() + CLOSE_FLUSH_DEADLINE, None, NetTimer::Deadline(token));
                if let Some(stream) = self.stream(token) {
                    stream.deadline_timer = Some(timer);
                }
                self.mark_dirty(token);
                true
            }
            Some(Entry::Stream(stream)) if stream.state == State::Closing => true,
            Some(_) => {
                self.release(token);
                true
            }
            None => false,
        }
    }

    /// The peer finished sending. Output still queued (replies to what it
    /// sent) is flushed before closing, as a peer that half-closed may still read.
    pub(super) fn peer_closed(&mut self, token: Token) {
        let pending = self
            .stream(token)
            .is_some_and(|s| s.state == State::Open && s.secure.is_none() && s.has_output());
        if !pending {
            return self.fail(token, errors::CONNECTION_LOST);
        }
        self.notices
            .push_back(Notice::Closed(token, errors::CONNECTION_LOST, None));
        self.close(token);
    }

    /// Closes a stream on error and queues the notice for its script.
    pub fn fail(&mut self, token: Token, error: &'static str) {
        self.fail_with(token, error, None);
    }

    /// Closes a stream on error, with what the system or the peer said, and
    /// queues the notice for its script: a connection that never became
    /// usable fails its connect; a link accepted but never secured was never
    /// shown to the script, so it just goes.
    pub fn fail_with(&mut self, token: Token, error: &'static str, detail: Option<String>) {
        let Some(Entry::Stream(stream)) = self.slot(token) else {
            return;
        };
        let notice = match (stream.state, &stream.secure) {
            (State::Resolving | State::Connecting, _) => Some(Notice::ConnectFailed(token, error, detail)),
            (State::Open, Some(securing)) if securing.accepted_by.is_some() => None,
            (State::Open, Some(_)) => Some(Notice::ConnectFailed(token, error, detail)),
            (State::Open, None) => Some(Notice::Closed(token, error, detail)),
            (State::Closing, _) => None,
        };
        self.release(token);
        self.notices.extend(notice);
    }

    fn release(&mut self, token: Token) {
        let index = index_of(token);
        if self.slot(token).is_none() {
            return;
        }
        let slot = &mut self.slots[index];
        let socket = slot.socket.take();
        slot.generation = slot.generation.wrapping_add(1).max(1);
        self.free.push(index as u32);
        let mgr = match &socket {
            Some(Entry::Listener(listener)) => {
                let _ = self.poller.delete(&listener.socket);
                listener.mgr
            }
            Some(Entry::Stream(stream)) => {
                if let Some(socket) = &stream.socket {
                    let _ = self.poller.delete(socket);
                }
                let secure_timer = stream.secure.as_ref().and_then(|s| s.timer);
                for timer in [
                    stream.idle_timer,
                    stream.deadline_timer,
                    stream.frame_timer,
                    secure_timer,
                ]
                .into_iter()
                .flatten()
                {
                    self.timers.cancel(timer);
                }
                if let Some(manager) = self.managers.get_mut(stream.mgr as usize) {
                    manager.pending_input = manager.pending_input.saturating_sub(stream.accounted_input);
                }
                stream.mgr
            }
            None => return,
        };
        if let Some(manager) = self.managers.get_mut(mgr as usize) {
            manager.open = manager.open.saturating_sub(1);
        }
        self.calls.forget(token);
    }

    /// The next notice for the Lua layer.
    pub fn pop_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
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
                        State::Resolving | State::Connecting => self.fail(token, errors::TIMEOUT),
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
                        self.fail(token, errors::TIMEOUT);
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

/// Why a frame could not be queued.
#[derive(Debug)]
pub enum SendError<E> {
    /// The payload could not be encoded.
    Encode(E),
    /// A socket-level error string.
    Net(&'static str),
}

/// Parses the next complete frame of `data[at..]`: its body and total length.
pub fn next_frame(data: &[u8], package_size: usize) -> Result<Option<(Body<'_>, usize)>, frame::FrameError> {
    match frame::complete_len(data, package_size)? {
        None => Ok(None),
        Some(total) => Ok(Some((frame::parse_body(&data[frame::PREFIX_LEN..total])?, total))),
    }
}
