//! Securing a link before it carries messages: TLS (rustls, driven by the
//! loop) and the cluster-secret handshake. Both sit below the framing: once
//! a link is secured, a plain link's frames flow exactly as before, so a
//! secret costs nothing after the handshake and forwarding stays zero-copy.

pub mod auth;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use crate::runtime::timers::TimerId;
use auth::{Handshake, Secret};
use tls::TlsConfig;

/// Default time a link has to finish its TLS and secret handshakes.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the links of a listener or a connection are secured.
#[derive(Clone)]
pub struct Security {
    /// Both ends must prove this secret before anything else is accepted.
    pub secret: Option<Arc<Secret>>,
    /// TLS configuration of this side.
    pub tls: Option<TlsConfig>,
    /// Time allowed for the handshakes.
    pub handshake_timeout: Duration,
}

impl Security {
    /// True when links need securing at all.
    pub fn is_needed(&self) -> bool {
        self.secret.is_some() || self.tls.is_some()
    }
}

/// A link being secured: what is still to do and how to announce it when done.
pub struct Securing {
    /// The secret handshake, once started (after TLS, if any, is up).
    pub auth: Option<Handshake>,
    /// The secret to prove, until the handshake starts.
    pub secret: Option<Arc<Secret>>,
    /// The listener that accepted the link; None for a connection we made.
    pub accepted_by: Option<u64>,
    /// The handshake deadline.
    pub timer: Option<TimerId>,
    /// Time allowed for the handshakes.
    pub timeout: Duration,
}
