//! Listening sockets: bind, listen, and accept until drained.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::NetError;
use super::secure::Security;
use super::slots::{Entry, index_of};
use super::stream::{Framing, State, Stream};
use super::{ACCEPT_RETRY, NetCore, NetTimer, Notice, Token};
use crate::log;

/// A listening socket.
pub struct Listener {
    /// Owning manager.
    pub mgr: u32,
    pub(super) socket: TcpListener,
    /// Bound address text.
    pub ip: String,
    /// Bound port (the real one when 0 was asked for).
    pub port: u16,
    /// How accepted links are secured (TLS, secret) before the script sees them.
    pub security: Option<Arc<Security>>,
    /// How accepted streams cut their bytes.
    pub framing: Framing,
}

impl NetCore {
    /// Binds and listens; the listener accepts until drained on each event.
    pub fn listen(
        &mut self,
        mgr: u32,
        ip: &str,
        port: u16,
        backlog: i32,
        security: Option<Arc<Security>>,
        framing: Framing,
    ) -> Result<Token, (NetError, Option<String>)> {
        self.has_room(mgr).map_err(|e| (e, None))?;
        let ip_addr: IpAddr = ip
            .parse()
            .map_err(|_| (NetError::AddrError, Some(format!("'{ip}' is not an IP address"))))?;
        let addr = SocketAddr::new(ip_addr, port);
        let os = |e: io::Error| (NetError::AddrError, Some(e.to_string()));
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(os)?;
        socket.set_reuse_address(true).map_err(os)?;
        socket.bind(&addr.into()).map_err(os)?;
        socket.listen(backlog).map_err(os)?;
        socket.set_nonblocking(true).map_err(os)?;
        let socket: TcpListener = socket.into();
        let bound = socket.local_addr().map_err(os)?;
        let token = self.adopt(Entry::Listener(Listener {
            mgr,
            socket,
            ip: bound.ip().to_string(),
            port: bound.port(),
            security: security.filter(|s| s.is_needed()),
            framing,
        }));
        let registered = match self.slot(token) {
            Some(Entry::Listener(listener)) => self.register(&listener.socket, index_of(token)),
            _ => unreachable!("just inserted"),
        };
        if let Err(error) = registered {
            self.release(token);
            return Err(os(error));
        }
        Ok(token)
    }

    pub(super) fn accept_all(&mut self, listener_token: Token) {
        loop {
            let Some(Entry::Listener(listener)) = self.slot(listener_token) else {
                return;
            };
            let mgr = listener.mgr;
            let security = listener.security.clone();
            let framing = listener.framing;
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
            if let Err(error) = socket.set_nonblocking(true) {
                log::error(&format!(
                    "dropped a connection from {peer}: cannot make it non-blocking: {error}"
                ));
                continue;
            }
            let _ = socket.set_nodelay(true);
            let mut stream = Stream::new(mgr, State::Open, None, peer.ip().to_string(), peer.port());
            stream.framing = framing;
            stream.accepted = true;
            if let Some(security) = &security
                && let Err(error) = Self::prepare_securing(&mut stream, security, Some(listener_token))
            {
                log::error(&format!("cannot secure a link from {peer}: {error}"));
                continue;
            }
            let token = self.adopt(Entry::Stream(stream));
            if let Err(error) = self.register(&socket, index_of(token)) {
                log::error(&format!("dropped a connection from {peer}: cannot poll it: {error}"));
                self.release(token);
                continue;
            }
            if let Some(stream) = self.stream(token) {
                stream.socket = Some(socket);
            }
            if security.is_some() {
                self.begin_securing(token); // announced once secured
            } else {
                self.notices.push_back(Notice::Accepted {
                    listener: listener_token,
                    stream: token,
                });
            }
        }
    }

    pub(super) fn log_refused(&mut self) {
        let now = Instant::now();
        if self
            .refused_logged_at
            .is_none_or(|at| now - at >= Duration::from_secs(1))
        {
            self.refused_logged_at = Some(now);
            log::warn("too-many-connection: refused an incoming connection (max_fd reached)");
        }
    }
}
