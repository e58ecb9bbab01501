//! Outgoing connections: name resolution off the loop, non-blocking connect, timeouts.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::NetError;
use super::resolver;
use super::secure::Security;
use super::slots::{Entry, index_of};
use super::stream::{Framing, State, Stream};
use super::{NetCore, NetTimer, Notice, Token};

impl NetCore {
    /// Starts a non-blocking connect; the outcome arrives as a notice.
    pub fn connect(
        &mut self,
        mgr: u32,
        host: &str,
        port: u16,
        timeout: Duration,
        framing: Framing,
        security: Option<&Security>,
    ) -> Result<Token, (NetError, Option<String>)> {
        self.has_room(mgr).map_err(|e| (e, None))?;
        if host.is_empty() {
            return Err((NetError::InvalidParam, Some("the host is empty".into())));
        }
        let mut stream = Stream::new(mgr, State::Resolving, None, host.to_string(), port);
        stream.framing = framing;
        if let Some(security) = security.filter(|s| s.is_needed()) {
            Self::prepare_securing(&mut stream, security, None).map_err(|e| (NetError::InvalidParam, Some(e)))?;
        }
        let token = self.adopt(Entry::Stream(stream));
        let timer = self
            .timers
            .add_at(Instant::now() + timeout, None, NetTimer::Deadline(token));
        if let Some(stream) = self.stream(token) {
            stream.deadline_timer = Some(timer);
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.start_connect(token, SocketAddr::new(ip, port)),
            Err(_) => {
                if !self.resolver.resolve(token, host.to_string(), port) {
                    let why = format!("more than {} name lookups are waiting", resolver::MAX_QUEUED);
                    self.fail_with(token, NetError::AddrError, Some(why));
                }
            }
        }
        Ok(token)
    }

    pub(super) fn start_connect(&mut self, token: Token, addr: SocketAddr) {
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
            Err(error) => return self.fail_with(token, NetError::ConnectFailed, Some(error.to_string())),
        };
        if let Err(error) = self.register(&socket, index_of(token)) {
            return self.fail_with(token, NetError::ConnectFailed, Some(error.to_string()));
        }
        if let Some(stream) = self.stream(token) {
            stream.socket = Some(socket);
            stream.state = State::Connecting;
        }
    }

    pub(super) fn finish_connect(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        let Some(socket) = &stream.socket else { return };
        let failure = match (socket.take_error(), socket.peer_addr()) {
            (Ok(None), Ok(_)) => None,
            (Ok(Some(error)) | Err(error), _) => Some(error.to_string()),
            (Ok(None), Err(error)) => Some(error.to_string()),
        };
        if let Some(why) = failure {
            return self.fail_with(token, NetError::ConnectFailed, Some(why));
        }
        let _ = socket.set_nodelay(stream.nodelay);
        if let Ok(peer) = socket.peer_addr() {
            stream.ip = peer.ip().to_string();
        }
        stream.state = State::Open;
        stream.last_recv = Instant::now();
        let deadline = stream.deadline_timer.take();
        let wants_flush = stream.unsent() > 0;
        let securing = stream.secure.is_some();
        if let Some(timer) = deadline {
            self.timers.cancel(timer);
        }
        if securing {
            return self.begin_securing(token); // on_connect("ok") once secured
        }
        self.notices.push_back(Notice::Connected(token));
        if wants_flush {
            self.mark_dirty(token);
        }
    }

    /// Connects the streams whose host names finished resolving.
    pub(super) fn connect_resolved(&mut self) {
        while let Some((token, result)) = self.resolver.try_next() {
            let resolving = self.stream(token).is_some_and(|s| s.state == State::Resolving);
            if !resolving {
                continue;
            }
            match result.map(|addrs| addrs.into_iter().next()) {
                Ok(Some(addr)) => self.start_connect(token, addr),
                Ok(None) => self.fail_with(token, NetError::AddrError, Some("the name has no address".into())),
                Err(error) => self.fail_with(token, NetError::AddrError, Some(error.to_string())),
            }
        }
    }
}
