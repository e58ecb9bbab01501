//! Securing links on the loop: the TLS handshake, then the secret handshake,
//! then the link is announced to the script (`on_accept`, `on_connect("ok")`).
//! A link that fails or takes too long is closed on its own: logged with the
//! peer's address and counted; a connection we made reports the error to
//! its `on_connect`.

use std::sync::Arc;
use std::time::Instant;

use super::NetError;
use super::secure::auth::{self, AuthError, Handshake, Progress, Role};
use super::secure::tls::TlsSession;
use super::secure::{Securing, Security};
use super::stream::Stream;
use super::{NetCore, NetTimer, Notice, Token};
use crate::log;

impl NetCore {
    /// Prepares a new stream to be secured per `security` (TLS session,
    /// frames held back); `accepted_by` is the listener for accepted links.
    pub(super) fn prepare_securing(
        stream: &mut Stream,
        security: &Security,
        accepted_by: Option<Token>,
    ) -> Result<(), String> {
        if let Some(config) = &security.tls {
            stream.tls = Some(Box::new(TlsSession::new(config)?));
        }
        stream.start_securing(Securing {
            auth: None,
            secret: security.secret.clone(),
            accepted_by,
            timer: None,
            timeout: security.handshake_timeout,
        });
        Ok(())
    }

    /// The link is up (accepted or connected): starts its handshake deadline,
    /// and the secret handshake right away on a plain link.
    pub(super) fn begin_securing(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        let Some(timeout) = stream.secure.as_ref().map(|s| s.timeout) else {
            return;
        };
        let timer = self
            .timers
            .add_at(Instant::now() + timeout, None, NetTimer::Secure(token));
        if let Some(securing) = self.stream(token).and_then(|s| s.secure.as_mut()) {
            securing.timer = Some(timer);
        }
        self.advance_securing(token);
        self.mark_dirty(token); // a TLS client speaks first
    }

    /// Moves a link on once TLS (if any) is up: starts the secret handshake,
    /// or announces the link when there is none.
    pub(super) fn advance_securing(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        if stream.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            return;
        }
        let Some(securing) = stream.secure.as_mut() else {
            return;
        };
        if securing.auth.is_some() {
            return;
        }
        let Some(secret) = securing.secret.take() else {
            return self.secured(token);
        };
        let role = if securing.accepted_by.is_some() {
            Role::Acceptor
        } else {
            Role::Connector
        };
        let mut hello = Vec::new();
        match Handshake::start(role, Arc::clone(&secret), &mut hello) {
            Ok(handshake) => {
                securing.auth = Some(handshake);
                stream.push_handshake(&hello);
                self.mark_dirty(token);
            }
            Err(error) => {
                self.securing_failed(token, NetError::AuthFailed, &format!("no random nonce: {error}"));
            }
        }
    }

    /// True while a stream's frames belong to its secret handshake.
    pub fn is_securing(&self, token: Token) -> bool {
        matches!(self.slot(token), Some(super::slots::Entry::Stream(stream)) if stream.secure.is_some())
    }

    /// Handles a frame that arrived while the link is being secured; returns
    /// true while it still is.
    pub fn handshake_frame(&mut self, token: Token, body: &[u8]) -> bool {
        let Some(stream) = self.stream(token) else { return false };
        let Some(handshake) = stream.secure.as_mut().and_then(|s| s.auth.as_mut()) else {
            let why = "a frame arrived before the TLS handshake finished";
            self.securing_failed(token, NetError::TlsFailed, why);
            return false;
        };
        let mut answer = Vec::new();
        let outcome = handshake.on_frame(body, &mut answer);
        stream.push_handshake(&answer);
        match outcome {
            Ok(Progress::Continue) => {
                self.mark_dirty(token);
                true
            }
            Ok(Progress::Done) => {
                self.secured(token);
                false
            }
            Err(error) => {
                self.refuse(token, &error);
                false
            }
        }
    }

    /// A frame of the secret handshake on a link that has no secret.
    pub fn unexpected_handshake(&mut self, token: Token) {
        self.count(token, |stats| stats.auth_failed += 1);
        let why = "the peer wants a cluster secret handshake; this link has no secret";
        self.log_closing(token, NetError::AuthFailed, why);
        self.fail_with(token, NetError::AuthFailed, Some(why.into()));
    }

    /// Logs why a link is closed: a warning for a link a listener accepted
    /// (its script may never have seen it); for a connection we made, the
    /// script hears it (on_connect or on_error, with the detail), so a
    /// service that keeps retrying is not logged once per attempt.
    pub(super) fn log_closing(&self, token: Token, error: NetError, why: &str) {
        let line = format!("closing stream {token} ({}): {error} ({why})", self.peer_of(token));
        match self.slot(token) {
            Some(super::slots::Entry::Stream(stream)) if !stream.accepted => log::debug(&line),
            _ => log::warn(&line),
        }
    }

    /// The handshake failed: tells an accepted peer why (it may be a
    /// misconfigured service) and closes the link. Our own proof, if still
    /// queued, leaves first: the peer then logs why precisely (a wrong
    /// secret) rather than a link closed mid-handshake.
    fn refuse(&mut self, token: Token, error: &AuthError) {
        let accepted = self
            .stream(token)
            .and_then(|s| s.secure.as_ref())
            .is_some_and(|s| s.accepted_by.is_some());
        if let Some(stream) = self.stream(token) {
            if accepted && !matches!(error, AuthError::Refused(_)) {
                let mut refusal = Vec::new();
                auth::push_refusal(&mut refusal, &error.to_string());
                stream.push_handshake(&refusal);
            }
            let _ = stream.flush(); // best effort: the link closes either way
        }
        self.securing_failed(token, NetError::AuthFailed, &error.to_string());
    }

    /// Closes a link that could not be secured: logged with the peer, counted.
    pub(super) fn securing_failed(&mut self, token: Token, error: NetError, why: &str) {
        self.count(token, |stats| {
            if error == NetError::TlsFailed {
                stats.tls_failed += 1;
            } else {
                stats.auth_failed += 1;
            }
        });
        self.log_closing(token, error, why);
        self.fail_with(token, error, Some(why.to_string()));
    }

    /// The handshake deadline passed.
    pub(super) fn handshake_timed_out(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        let Some(securing) = stream.secure.as_mut() else { return };
        securing.timer = None;
        let ms = securing.timeout.as_millis();
        let (error, what) = if stream.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            (NetError::TlsFailed, "TLS handshake")
        } else {
            (NetError::AuthFailed, "secret handshake")
        };
        self.securing_failed(token, error, &format!("the {what} did not finish within {ms} ms"));
    }

    /// The peer closed the link before it was secured.
    pub(super) fn closed_while_securing(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        if stream.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            let why = "the peer closed the link during the TLS handshake (it refused our certificate, or it does not speak TLS)";
            self.securing_failed(token, NetError::TlsFailed, why);
        } else {
            let why = "the peer closed the link during the secret handshake (a different secret, or none?)";
            self.securing_failed(token, NetError::AuthFailed, why);
        }
    }

    /// The link is secured: frames held back leave, and the script hears of it.
    fn secured(&mut self, token: Token) {
        let Some(stream) = self.stream(token) else { return };
        let Some(securing) = stream.secured() else { return };
        if let Some(timer) = securing.timer {
            self.timers.cancel(timer);
        }
        self.notices.push_back(match securing.accepted_by {
            Some(listener) => Notice::Accepted {
                listener,
                stream: token,
            },
            None => Notice::Connected(token),
        });
        self.mark_dirty(token);
    }

    /// "ip:port" of a stream's peer, for log lines.
    pub(super) fn peer_of(&self, token: Token) -> String {
        match self.slot(token) {
            Some(super::slots::Entry::Stream(stream)) => format!("{}:{}", stream.ip, stream.port),
            _ => "closed".into(),
        }
    }
}
