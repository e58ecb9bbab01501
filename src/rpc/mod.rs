//! Calls waiting for their answers, kept by the core instead of Lua tables:
//! session ids, who waits for each (a Lua coroutine, by registry reference),
//! the stream each went out on, and one deadline each in a timer heap, so a
//! timeout fires on time instead of on a periodic sweep. No Lua here; the
//! Lua layer (`crate::lua::calls`) resumes the coroutines.

use std::collections::HashMap;
use std::time::Instant;

use crate::route::Token;
use crate::runtime::timers::{TimerId, Timers};

/// A call waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Registry reference of the coroutine to resume.
    pub waiter: i32,
    /// The stream the call went out on (its loss fails the call).
    pub stream: Token,
    /// A router tracks the call: a timeout sends it a Cancel.
    pub tracked: bool,
    timer: TimerId,
}

/// Counters of `rpc.stats()`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Calls started.
    pub calls: u64,
    /// Calls answered (with results or a remote error).
    pub completed: u64,
    /// Calls that timed out.
    pub timeouts: u64,
    /// Answers that came after their call was over.
    pub late_replies: u64,
    /// Calls failed because their stream or callee went away.
    pub connection_lost: u64,
    /// Calls the router had no route for.
    pub no_route: u64,
    /// Calls whose handler raised an error or did not exist.
    pub remote_errors: u64,
}

/// Calls waiting for answers, by session.
pub struct PendingCalls {
    next_session: u32,
    calls: HashMap<u32, Pending>,
    by_stream: HashMap<Token, Vec<u32>>,
    deadlines: Timers<u32>,
    /// What happened so far.
    pub counters: Counters,
}

impl Default for PendingCalls {
    fn default() -> Self {
        Self::new()
    }
}

impl PendingCalls {
    /// An empty table; sessions start at a random point so that a restarted
    /// caller does not reuse the ids of its previous life's calls.
    pub fn new() -> Self {
        let mut seed = [0u8; 4];
        let start = match getrandom::fill(&mut seed) {
            Ok(()) => u32::from_le_bytes(seed) >> 1,
            Err(_) => std::process::id(),
        };
        PendingCalls {
            next_session: start.max(1),
            calls: HashMap::new(),
            by_stream: HashMap::new(),
            deadlines: Timers::new(),
            counters: Counters::default(),
        }
    }

    /// Registers a call; returns its session (never 0, never one in use).
    pub fn start(&mut self, waiter: i32, stream: Token, tracked: bool, deadline: Instant) -> u32 {
        let session = loop {
            self.next_session = self.next_session.wrapping_add(1).max(1);
            if !self.calls.contains_key(&self.next_session) {
                break self.next_session;
            }
        };
        let timer = self.deadlines.add_at(deadline, None, session);
        self.calls.insert(
            session,
            Pending {
                waiter,
                stream,
                tracked,
                timer,
            },
        );
        self.by_stream.entry(stream).or_default().push(session);
        self.counters.calls += 1;
        session
    }

    /// Takes a call out (answered, failed or timed out); None if it is not pending.
    pub fn take(&mut self, session: u32) -> Option<Pending> {
        let pending = self.calls.remove(&session)?;
        self.deadlines.cancel(pending.timer);
        if let Some(sessions) = self.by_stream.get_mut(&pending.stream) {
            sessions.retain(|&s| s != session);
            if sessions.is_empty() {
                self.by_stream.remove(&pending.stream);
            }
        }
        Some(pending)
    }

    /// Takes every call that went out on `stream` (it closed).
    pub fn take_stream(&mut self, stream: Token) -> Vec<(u32, Pending)> {
        let sessions = self.by_stream.remove(&stream).unwrap_or_default();
        sessions
            .into_iter()
            .filter_map(|session| {
                let pending = self.calls.remove(&session)?;
                self.deadlines.cancel(pending.timer);
                Some((session, pending))
            })
            .collect()
    }

    /// Takes the next call whose deadline is past at `now`.
    pub fn take_expired(&mut self, now: Instant) -> Option<(u32, Pending)> {
        while let Some((_, session)) = self.deadlines.pop_due(now) {
            if let Some(pending) = self.calls.get(&session).copied() {
                self.take(session);
                return Some((session, pending));
            }
        }
        None
    }

    /// The earliest deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.deadlines.next_deadline()
    }

    /// True while `session` waits for its answer.
    pub fn is_pending(&self, session: u32) -> bool {
        self.calls.contains_key(&session)
    }

    /// Calls waiting now.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when no call waits.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sessions_are_unique_never_zero_and_answered_once() {
        let mut calls = PendingCalls::new();
        calls.next_session = u32::MAX - 1;
        let now = Instant::now();
        let a = calls.start(1, 10, false, now + Duration::from_secs(5));
        let b = calls.start(2, 10, true, now + Duration::from_secs(5));
        assert_eq!((a, b), (u32::MAX, 1), "wraps past 0");
        assert_eq!(calls.take(a).map(|p| p.waiter), Some(1));
        assert_eq!(calls.take(a), None, "answered once");
        assert!(calls.is_pending(b));
        assert_eq!(calls.counters.calls, 2);
    }

    #[test]
    fn deadlines_fire_in_order_and_a_taken_call_never_times_out() {
        let mut calls = PendingCalls::new();
        let now = Instant::now();
        let late = calls.start(1, 10, false, now + Duration::from_millis(30));
        let early = calls.start(2, 10, false, now + Duration::from_millis(10));
        let answered = calls.start(3, 10, false, now + Duration::from_millis(5));
        calls.take(answered);
        assert_eq!(calls.next_deadline(), Some(now + Duration::from_millis(10)));
        let due = now + Duration::from_millis(40);
        assert_eq!(calls.take_expired(due).map(|(s, _)| s), Some(early));
        assert_eq!(calls.take_expired(due).map(|(s, _)| s), Some(late));
        assert_eq!(calls.take_expired(due), None);
        assert!(calls.is_empty());
    }

    #[test]
    fn a_closed_stream_takes_its_calls_only() {
        let mut calls = PendingCalls::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let on_a: Vec<u32> = (0..3).map(|w| calls.start(w, 7, false, deadline)).collect();
        let on_b = calls.start(9, 8, false, deadline);
        let mut lost: Vec<u32> = calls.take_stream(7).into_iter().map(|(s, _)| s).collect();
        lost.sort_unstable();
        let mut expected = on_a.clone();
        expected.sort_unstable();
        assert_eq!(lost, expected);
        assert_eq!(calls.len(), 1);
        assert!(calls.is_pending(on_b));
        assert_eq!(
            calls.take_expired(deadline + Duration::from_secs(1)).map(|(s, _)| s),
            Some(on_b)
        );
    }
}
