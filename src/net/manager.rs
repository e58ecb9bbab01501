//! Socket managers: what each one bounds, counts and routes.

use std::time::{Duration, Instant};

use super::slots::Entry;
use super::{DEFAULT_FRAME_TIMEOUT, DEFAULT_MAX_PENDING_INPUT, DEFAULT_PACKAGE_SIZE, NetCore, NetError, Token, calls};
use crate::route::RouteTable;
use crate::route::pubsub::Topics;

/// Counters a script can read from its manager.
#[derive(Default, Debug, Clone)]
pub struct Stats {
    /// Frames passed on by this router.
    pub forwarded: u64,
    /// Forwards reported back as undeliverable, and publishes (or retained
    /// messages) that could not be delivered to a subscriber.
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
    /// Messages published through this router.
    pub published: u64,
    /// Published messages no subscriber heard.
    pub published_unheard: u64,
    /// Subscriptions refused (`too-many-subscriptions`, `too-many-topics`).
    pub subscriptions_refused: u64,
    /// Retained messages refused (`retained-full`, `too-many-topics`).
    pub retain_refused: u64,
}

impl Manager {
    /// Every counter and gauge of the manager by name (`mgr.stats()`, metrics).
    pub fn counters(&self) -> [(&'static str, u64); 22] {
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
            ("published", s.published),
            ("published_unheard", s.published_unheard),
            ("subscriptions_refused", s.subscriptions_refused),
            ("retain_refused", s.retain_refused),
            ("topics", self.topics.len() as u64),
            ("retained_bytes", self.topics.retained_bytes() as u64),
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
    /// Publish/subscribe topics.
    pub topics: Topics,
}

impl NetCore {
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
            topics: Topics::default(),
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
        for (token, stream) in self.slots.streams() {
            self.managers[stream.mgr as usize].tracked_calls += self.calls.count_of(token);
        }
        &self.managers
    }

    /// Every open listener and stream.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let now = Instant::now();
        let mut list = Vec::new();
        for (token, entry) in self.slots.iter() {
            match entry {
                Entry::Listener(listener) => list.push(ConnectionInfo {
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
                Entry::Stream(stream) => list.push(ConnectionInfo {
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
            }
        }
        list
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

    pub(super) fn has_room(&self, mgr: u32) -> Result<(), NetError> {
        let manager = self.managers.get(mgr as usize).ok_or(NetError::InvalidParam)?;
        if manager.open >= manager.max_fd {
            return Err(NetError::TooManyConnection);
        }
        Ok(())
    }
}
