//! Calls waiting for their answers, kept by the core instead of Lua tables:
//! session ids, who waits for each (a Lua coroutine, by registry reference),
//! the stream each went out on, and one deadline each in a heap, so a
//! timeout fires on time instead of on a periodic sweep. No Lua here; the
//! Lua layer (`crate::lua::calls`) resumes the coroutines.

pub mod wire;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::route::Token;

/// Sessions below this are the core's; the Lua layer numbers its own calls
/// (broadcast calls) from here up, so an answer's session says who waits.
pub const LUA_SESSIONS_START: u32 = 0x8000_0000;

/// A call waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Registry reference of the coroutine to resume.
    pub waiter: i32,
    /// The stream the call went out on (its loss fails the call).
    pub stream: Token,
    /// A router tracks the call: a timeout sends it a Cancel.
    pub tracked: bool,
    /// When the call times out.
    pub deadline: Instant,
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

/// Hashes a session by one multiplication (Fibonacci hashing). Sessions are
/// handed out here, one after the other, so nobody can pick keys that
/// collide; a looked-up session that no call has costs a probe, nothing more.
#[derive(Default)]
pub struct SessionHasher(u64);

impl Hasher for SessionHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, session: u32) {
        self.0 = u64::from(session).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Calls waiting for answers, by session.
pub struct PendingCalls {
    next_session: u32,
    calls: HashMap<u32, Pending, BuildHasherDefault<SessionHasher>>,
    /// (deadline, session); an entry whose call is gone or has another
    /// deadline is stale and skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
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
            Ok(()) => u32::from_le_bytes(seed),
            Err(_) => std::process::id(),
        };
        PendingCalls {
            next_session: (start % LUA_SESSIONS_START).max(1),
            calls: HashMap::default(),
            deadlines: BinaryHeap::new(),
            counters: Counters::default(),
        }
    }

    /// True for the sessions this table hands out (the rest are the Lua layer's).
    pub fn owns(session: u32) -> bool {
        session != 0 && session < LUA_SESSIONS_START
    }

    /// A session no pending call uses (never 0, below [`LUA_SESSIONS_START`]);
    /// the call is registered by [`Self::insert`] once it is sent.
    pub fn next_free_session(&mut self) -> u32 {
        loop {
            let next = self.next_session.wrapping_add(1);
            self.next_session = if Self::owns(next) { next } else { 1 };
            if !self.calls.contains_key(&self.next_session) {
                return self.next_session;
            }
        }
    }

    /// Registers a sent call under `session` (from [`Self::next_free_session`]),
    /// or puts a taken one back; counting it is the caller's.
    pub fn insert(&mut self, session: u32, pending: Pending) {
        self.deadlines.push(Reverse((pending.deadline, session)));
        self.calls.insert(session, pending);
    }

    /// Takes a call out (answered, failed or timed out); None if it is not pending.
    pub fn take(&mut self, session: u32) -> Option<Pending> {
        let pending = self.calls.remove(&session)?;
        // Answered calls leave their deadline behind; when stale entries
        // outnumber the live ones, rebuild so memory follows the live calls.
        if self.deadlines.len() > 2 * self.calls.len() + 64 {
            self.deadlines = self
                .calls
                .iter()
                .map(|(&session, call)| Reverse((call.deadline, session)))
                .collect();
        }
        Some(pending)
    }

    /// Takes every call that went out on `stream` (it closed). A scan: a
    /// stream closes far less often than a call is answered.
    pub fn take_stream(&mut self, stream: Token) -> Vec<(u32, Pending)> {
        let lost: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, call)| call.stream == stream)
            .map(|(&session, _)| session)
            .collect();
        lost.into_iter()
            .filter_map(|session| Some((session, self.take(session)?)))
            .collect()
    }

    /// Takes the next call whose deadline is past at `now`.
    pub fn take_expired(&mut self, now: Instant) -> Option<(u32, Pending)> {
        while let Some(&Reverse((deadline, session))) = self.deadlines.peek() {
            if deadline > now {
                return None;
            }
            self.deadlines.pop();
            if self.calls.get(&session).is_some_and(|call| call.deadline == deadline) {
                return self.take(session).map(|pending| (session, pending));
            }
        }
        None
    }

    /// The earliest deadline of a pending call.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, session))) = self.deadlines.peek() {
            if self.calls.get(&session).is_some_and(|call| call.deadline == deadline) {
                return Some(deadline);
            }
            self.deadlines.pop();
        }
        None
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

    fn start(calls: &mut PendingCalls, waiter: i32, stream: Token, deadline: Instant) -> u32 {
        let session = calls.next_free_session();
        let pending = Pending {
            waiter,
            stream,
            tracked: false,
            deadline,
        };
        calls.insert(session, pending);
        calls.counters.calls += 1;
        session
    }

    #[test]
    fn sessions_are_unique_never_zero_the_cores_own_and_answered_once() {
        let mut calls = PendingCalls::new();
        calls.next_session = LUA_SESSIONS_START - 2;
        let deadline = Instant::now() + Duration::from_secs(5);
        let a = start(&mut calls, 1, 10, deadline);
        let b = start(&mut calls, 2, 10, deadline);
        assert_eq!(
            (a, b),
            (LUA_SESSIONS_START - 1, 1),
            "wraps below the Lua layer's sessions, past 0"
        );
        calls.next_session = 0;
        assert_eq!(calls.next_free_session(), 2, "1 is in use");
        assert!(PendingCalls::owns(a) && !PendingCalls::owns(LUA_SESSIONS_START) && !PendingCalls::owns(0));
        assert_eq!(calls.take(a).map(|p| p.waiter), Some(1));
        assert_eq!(calls.take(a), None, "answered once");
        assert!(calls.calls.contains_key(&b));
        assert_eq!(calls.counters.calls, 2);
    }

    #[test]
    fn deadlines_fire_in_order_and_a_taken_call_never_times_out() {
        let mut calls = PendingCalls::new();
        let now = Instant::now();
        let late = start(&mut calls, 1, 10, now + Duration::from_millis(30));
        let early = start(&mut calls, 2, 10, now + Duration::from_millis(10));
        let answered = start(&mut calls, 3, 10, now + Duration::from_millis(5));
        calls.take(answered);
        assert_eq!(calls.next_deadline(), Some(now + Duration::from_millis(10)));
        let due = now + Duration::from_millis(40);
        assert_eq!(calls.take_expired(due).map(|(s, _)| s), Some(early));
        assert_eq!(calls.take_expired(due).map(|(s, _)| s), Some(late));
        assert_eq!(calls.take_expired(due), None);
        assert!(calls.is_empty());
        assert_eq!(calls.next_deadline(), None);
    }

    #[test]
    fn answered_calls_do_not_pile_up_deadlines() {
        let mut calls = PendingCalls::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for waiter in 0..10_000 {
            let session = start(&mut calls, waiter, 1, deadline);
            calls.take(session);
        }
        assert!(calls.deadlines.len() <= 64 + 1, "{}", calls.deadlines.len());
    }

    #[test]
    fn a_closed_stream_takes_its_calls_only() {
        let mut calls = PendingCalls::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let on_a: Vec<u32> = (0..3).map(|w| start(&mut calls, w, 7, deadline)).collect();
        let on_b = start(&mut calls, 9, 8, deadline);
        let mut lost: Vec<u32> = calls.take_stream(7).into_iter().map(|(s, _)| s).collect();
        lost.sort_unstable();
        let mut expected = on_a.clone();
        expected.sort_unstable();
        assert_eq!(lost, expected);
        assert_eq!(calls.len(), 1);
        assert!(calls.calls.contains_key(&on_b));
        assert_eq!(
            calls.take_expired(deadline + Duration::from_secs(1)).map(|(s, _)| s),
            Some(on_b)
        );
    }
}
