//! The network core: listeners, streams, framing and forwarding, with no Lua.
//!
//! Sockets are registered edge-triggered on the process's one poller, keyed
//! by slot index. The core turns readiness into buffered bytes and
//! [`Notice`]s; the Lua layer turns those into callbacks.

pub mod errors;
mod forward;
pub mod frame;
pub mod resolver;
pub mod stream;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Event, PollMode, Poller};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::log;
use crate::route::RouteTable;
use crate::runtime::timers::Timers;
pub use crate::runtime::waiter::Readiness;
use forward::Inflight;
use frame::{Body, Kind, Route};
use resolver::Resolver;
pub use stream::Framing;
use stream::{Flushed, State, Stream};

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

/// Something the Lua layer must tell a script about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A listener accepted a stream.
    Accepted { listener: Token, stream: Token },
    /// A connect finished.
    Connected(Token),
    /// A connect failed; the stream is gone.
    ConnectFailed(Token, &'static str),
    /// An open stream failed; it is gone.
    Closed(Token, &'static str),
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
}

/// A listening socket.
pub struct Listener {
    /// Owning manager.
    pub mgr: u32,
    socket: TcpListener,
    /// Bound address text.
    pub ip: String,
    /// Bound port (the real one when 0 was asked for).
    pub port: u16,
}

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
}

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
    resolver: Resolver,
    refused_logged_at: Option<Instant>,
    /// Routed calls waiting for an answer, by (caller token, session).
    inflight: HashMap<(Token, u32), Inflight>,
    /// Tracked calls whose receiver went away, to report to their callers.
    lost: Vec<forward::LostCall>,
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
            refused_logged_at: None,
            inflight: HashMap::new(),
            lost: Vec::new(),
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
        });
        (self.managers.len() - 1) as u32
    }

    /// A manager by index.
    pub fn manager(&mut self, mgr: u32) -> Option<&mut Manager> {
        self.managers.get_mut(mgr as usize)
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
        unsafe {
            self.poller
                .add_with_mode(fd.as_raw_fd(), Event::all(key), PollMode::Edge)
        }
    }

    /// Binds and listens; the listener accepts until drained on each event.
    pub fn listen(&mut self, mgr: u32, ip: &str, port: u16, backlog: i32) -> Result<Token, String> {
        self.has_room(mgr).map_err(String::from)?;
        let ip_addr: IpAddr = ip.parse().map_err(|_| errors::ADDR_ERROR.to_string())?;
        let addr = SocketAddr::new(ip_addr, port);
        let socket =
            Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(|e| e.to_string())?;
        socket.set_reuse_address(true).map_err(|e| e.to_string())?;
        socket.bind(&addr.into()).map_err(|e| e.to_string())?;
        socket.listen(backlog).map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let socket: TcpListener = socket.into();
        let bound = socket.local_addr().map_err(|e| e.to_string())?;
        let token = self.insert(Entry::Listener(Listener {
            mgr,
            socket,
            ip: bound.ip().to_string(),
            port: bound.port(),
        }));
        let registered = match self.slot(token) {
            Some(Entry::Listener(listener)) => self.register(&listener.socket, index_of(token)),
            _ => unreachable!("just inserted"),
        };
        if let Err(error) = registered {
            self.release(token);
            return Err(error.to_string());
        }
        self.managers[mgr as usize].open += 1;
        Ok(token)
    }

    /// Starts a non-blocking connect; the outcome arrives as a notice.
    pub fn connect(
        &mut self,
        mgr: u32,
        host: &str,
        port: u16,
        timeout: Duration,
        framing: Framing,
    ) -> Result<Token, &'static str> {
        self.has_room(mgr)?;
        if host.is_empty() {
            return Err(errors::INVALID_PARAM);
        }
        let mut stream = Stream::new(mgr, State::Resolving, None, host.to_string(), port);
        stream.framing = framing;
        let token = self.insert(Entry::Stream(stream));
        self.managers[mgr as usize].open += 1;
        let timer = self
            .timers
            .add_at(Instant::now() + timeout, None, NetTimer::Deadline(token));
        if let Some(stream) = self.stream(token) {
            stream.deadline_timer = Some(timer);
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.start_connect(token, SocketAddr::new(ip, port)),
            Err(_) => self.resolver.resolve(token, host.to_string(), port),
        }
        Ok(token)
    }

    fn start_connect(&mut self, token: Token, addr: SocketAddr) {
        let attempt = (|| -> io::Result<TcpStream> {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_nonblocking(true)?;
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(socket.into())
        })();
        let socket = match attempt {
            Ok(socket) => socket,
            Err(_) => return self.fail(token, errors::CONNECT_FAILED),
        };
        if self.register(&socket, index_of(token)).is_err() {
            return self.fail(token, errors::CONNECT_FAILED);
        }
        if let Some(stream) = self.stream(token) {
            stream.socket = Some(socket);
            stream.state = State::Connecting;
        }
    }

    fn finish_connect(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        let Some(socket) = &stream.socket else { return };
        let connected = matches!(socket.take_error(), Ok(None)) && socket.peer_addr().is_ok();
        if !connected {
            return self.fail(token, errors::CONNECT_FAILED);
        }
        let _ = socket.set_nodelay(stream.nodelay);
        if let Ok(peer) = socket.peer_addr() {
            stream.ip = peer.ip().to_string();
        }
        stream.state = State::Open;
        stream.last_recv = Instant::now();
        let deadline = stream.deadline_timer.take();
        let wants_flush = stream.unsent() > 0;
        if let Some(timer) = deadline {
            self.timers.cancel(timer);
        }
        self.notices.push_back(Notice::Connected(token));
        if wants_flush {
            self.mark_dirty(token);
        }
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

    fn accept_all(&mut self, listener_token: Token) {
        loop {
            let Some(Entry::Listener(listener)) = self.slot(listener_token) else {
                return;
            };
            let mgr = listener.mgr;
            let (socket, peer) = match listener.socket.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    log::error(&format!(
                        "accept failed: {e}; retrying in {} ms",
                        ACCEPT_RETRY.as_millis()
                    ));
                    self.timers.add_at(
                        Instant::now() + ACCEPT_RETRY,
                        None,
                        NetTimer::AcceptRetry(listener_token),
                    );
                    return;
                }
                Err(_) => continue, // the peer gave up before we accepted: take the next one
            };
            if self.has_room(mgr).is_err() {
                drop(socket);
                self.managers[mgr as usize].stats.refused += 1;
                self.log_refused();
                continue;
            }
            if socket.set_nonblocking(true).is_err() {
                continue;
            }
            let _ = socket.set_nodelay(true);
            let stream = Stream::new(mgr, State::Open, None, peer.ip().to_string(), peer.port());
            let token = self.insert(Entry::Stream(stream));
            if self.register(&socket, index_of(token)).is_err() {
                self.release(token);
                continue;
            }
            if let Some(stream) = self.stream(token) {
                stream.socket = Some(socket);
            }
            self.managers[mgr as usize].open += 1;
            self.notices.push_back(Notice::Accepted {
                listener: listener_token,
                stream: token,
            });
        }
    }

    fn log_refused(&mut self) {
        let now = Instant::now();
        if self
            .refused_logged_at
            .is_none_or(|at| now - at >= Duration::from_secs(1))
        {
            self.refused_logged_at = Some(now);
            log::warn("too-many-connection: refused an incoming connection (max_fd reached)");
        }
    }

    /// Reads once from a stream; a full read queues it to be read again this pass.
    pub fn read(&mut self, token: Token) -> ReadResult {
        let scratch_free = !self.scratch.is_empty() || self.scratch.capacity() > 0;
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
        // Read a whole large frame in one go once its length is known.
        let want = match frame::declared_len(&data) {
            Some(body) if !from_scratch => (frame::PREFIX_LEN + body).saturating_sub(data.len()).max(READ_CHUNK),
            _ => READ_CHUNK,
        };
        let before = data.len();
        let result = stream.recv_into(&mut data, want);
        match result {
            Ok(0) => {
                self.put_back(token, data, from_scratch);
                self.peer_closed(token);
                ReadResult::Closed
            }
            Ok(received) => {
                let more = received == data.capacity() - before;
                if let Some(stream) = self.stream(token) {
                    stream.last_recv = Instant::now();
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
                self.fail(token, errors::CONNECTION_LOST);
                ReadResult::Closed
            }
        }
    }

    // A closing stream's input is read and dropped until the peer closes.
    fn discard_input(&mut self, token: Token) -> ReadResult {
        let mut sink = std::mem::take(&mut self.scratch);
        loop {
            sink.clear();
            let Some(stream) = self.stream(token) else { break };
            match stream.recv_into(&mut sink, READ_CHUNK) {
                Ok(0) => {
                    self.release(token);
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

    fn put_back(&mut self, token: Token, mut data: Vec<u8>, from_scratch: bool) {
        if from_scratch {
            data.clear();
            self.scratch = data;
        } else if let Some(stream) = self.stream(token) {
            stream.input = data;
        }
    }

    /// Returns a buffer lent by [`NetCore::read`]; bytes past `consumed` stay pending.
    pub fn give_back_input(&mut self, token: Token, input: Input, consumed: usize) {
        let Input {
            mut data,
            from_scratch,
            more,
        } = input;
        if from_scratch {
            if let Some(stream) = self.stream(token)
                && consumed < data.len()
            {
                stream.input.extend_from_slice(&data[consumed..]);
            }
            data.clear();
            self.scratch = data;
        } else if let Some(stream) = self.stream(token) {
            if consumed >= data.len() {
                stream.input = Vec::new();
            } else {
                data.drain(..consumed);
                stream.input = data;
            }
        }
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

    /// Appends a frame built by `write` to the stream's output, enforcing the
    /// package size on the payload and the send buffer limit.
    pub fn send_with<E>(
        &mut self,
        token: Token,
        kind: Kind,
        route: Option<&Route>,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, SendError<E>> {
        let Some((stream, manager)) = self.stream_and_manager(token) else {
            return Err(SendError::Net(errors::CLOSED));
        };
        if stream.state == State::Closing {
            return Err(SendError::Net(errors::CLOSED));
        }
        let package_size = manager.package_size;
        let out = stream.output_mut();
        let start = frame::begin(out, kind);
        if let Some(route) = route {
            frame::push_route(out, route);
        }
        let payload_start = out.len();
        if let Err(error) = write(out) {
            stream.discard_output(start);
            return Err(SendError::Encode(error));
        }
        if out.len() - payload_start > package_size {
            stream.discard_output(start);
            return Err(SendError::Net(errors::PACKAGE_TOO_LARGE));
        }
        frame::finish(out, start);
        match stream.commit_output(start) {
            Ok(size) => {
                // A big backlog is written now rather than at the end of the pass.
                if stream.unsent() >= EARLY_FLUSH && !stream.write_blocked && stream.state == State::Open {
                    self.flush_stream(token);
                } else {
                    self.mark_dirty(token);
                }
                Ok(size)
            }
            Err(error) => {
                self.fail(token, error);
                Err(SendError::Net(error))
            }
        }
    }

    /// Appends bytes built by `write` with no luna framing (for RESP streams),
    /// enforcing the send buffer limit.
    pub fn send_raw<E>(
        &mut self,
        token: Token,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<usize, SendError<E>> {
        let Some(stream) = self.stream(token).filter(|s| s.state != State::Closing) else {
            return Err(SendError::Net(errors::CLOSED));
        };
        let out = stream.output_mut();
        let start = out.len();
        if let Err(error) = write(out) {
            stream.discard_output(start);
            return Err(SendError::Encode(error));
        }
        match stream.commit_output(start) {
            Ok(size) => {
                self.mark_dirty(token);
                Ok(size)
            }
            Err(error) => {
                self.fail(token, error);
                Err(SendError::Net(error))
            }
        }
    }

    /// How a stream's bytes are cut into messages.
    pub fn framing_of(&self, token: Token) -> Framing {
        match self.slot(token) {
            Some(Entry::Stream(stream)) => stream.framing,
            _ => Framing::Luna,
        }
    }

    fn mark_dirty(&mut self, token: Token) {
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
        self.report_lost_calls();
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

    fn flush_stream(&mut self, token: Token) {
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
                    self.fail(token, errors::CONNECTION_LOST);
                }
            }
        }
    }

    /// True while any stream has output not yet written.
    pub fn has_unsent_output(&self) -> bool {
        self.slots.iter().any(|slot| match &slot.socket {
            Some(Entry::Stream(stream)) => {
                stream.unsent() > 0 && matches!(stream.state, State::Open | State::Closing | State::Connecting)
            }
            _ => false,
        })
    }

    /// Waits (bounded by `deadline`) until the kernel has no unacknowledged
    /// output left on any stream, so closing at exit loses nothing.
    pub fn wait_until_acknowledged(&self, deadline: Instant) -> bool {
        loop {
            let waiting = self.slots.iter().any(|slot| match &slot.socket {
                Some(Entry::Stream(Stream {
                    socket: Some(socket),
                    state: State::Open | State::Closing,
                    ..
                })) => unacknowledged_bytes(socket) > 0,
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
        let tokens: Vec<Token> = (0..self.slots.len()).filter_map(|key| self.token_at(key)).collect();
        for token in tokens {
            if self.stream(token).is_some_and(|s| s.unsent() > 0) {
                self.mark_dirty(token);
            }
        }
    }

    /// Closes a listener or stream at the script's request: a stream first
    /// flushes what it queued (bounded by a deadline). No notice follows.
    pub fn close(&mut self, token: Token) -> bool {
        match self.slot_mut(token) {
            Some(Entry::Stream(stream)) if stream.state == State::Open && stream.unsent() > 0 => {
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
    fn peer_closed(&mut self, token: Token) {
        let pending = self
            .stream(token)
            .is_some_and(|s| s.state == State::Open && s.unsent() > 0);
        if !pending {
            return self.fail(token, errors::CONNECTION_LOST);
        }
        self.notices.push_back(Notice::Closed(token, errors::CONNECTION_LOST));
        self.close(token);
    }

    /// Closes a stream on error and queues the notice for its script.
    pub fn fail(&mut self, token: Token, error: &'static str) {
        let Some(Entry::Stream(stream)) = self.slot(token) else {
            return;
        };
        let notice = match stream.state {
            State::Resolving | State::Connecting => Notice::ConnectFailed(token, error),
            State::Open => Notice::Closed(token, error),
            State::Closing => {
                self.release(token);
                return;
            }
        };
        self.release(token);
        self.notices.push_back(notice);
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
                for timer in [stream.idle_timer, stream.deadline_timer].into_iter().flatten() {
                    self.timers.cancel(timer);
                }
                stream.mgr
            }
            None => return,
        };
        if let Some(manager) = self.managers.get_mut(mgr as usize) {
            manager.open = manager.open.saturating_sub(1);
        }
        self.forget_calls_of(token);
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

    /// Runs due internal deadlines and finished name lookups.
    pub fn run_timers(&mut self, now: Instant) {
        while let Some((token, result)) = self.resolver.try_next() {
            let resolving = self.stream(token).is_some_and(|s| s.state == State::Resolving);
            if !resolving {
                continue;
            }
            match result.ok().and_then(|addrs| addrs.into_iter().next()) {
                Some(addr) => self.start_connect(token, addr),
                None => self.fail(token, errors::ADDR_ERROR),
            }
        }
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
            }
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
