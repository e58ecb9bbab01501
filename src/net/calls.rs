//! Tracking of routed calls on a router.
//!
//! A forward that carries a session is a call whose answer the router
//! watches, so that when the receiver goes away the caller hears
//! `connection-lost` at once instead of waiting for its timeout. The answer
//! (a forward flagged as a reply) settles the entry; the caller's `Cancel`
//! or departure drops it. Every caller may hold a bounded number of entries
//! and the whole table is bounded too, so one client flooding calls that are
//! never answered cannot take tracking away from the others.

use std::collections::HashMap;

use super::Token;
use super::frame::Mode;
use crate::route::Node;

/// Most calls one process tracks at once, over every caller.
pub const MAX_TRACKED_CALLS: usize = 1 << 20;
/// Default most calls one connection may have tracked at once.
pub const DEFAULT_MAX_PER_CALLER: usize = 65_536;

/// A tracked call: how it was routed and who has not answered yet.
struct Inflight {
    mode: Mode,
    /// (service id, token) of each receiver still expected to answer.
    waiting: Vec<Node>,
}

/// A tracked call whose receiver went away: its caller must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostCall {
    /// The stream that made the call.
    pub caller: Token,
    /// The call's session on that stream.
    pub session: u32,
    /// How the call was routed.
    pub mode: Mode,
    /// The service id of the receiver that went away.
    pub receiver_id: u32,
}

/// Why a call could not be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The caller has as many calls tracked as its cap allows.
    CallerFull,
    /// The process-wide table is full.
    TableFull,
}

/// Routed calls waiting for an answer, by (caller token, session).
#[derive(Default)]
pub struct CallTracker {
    inflight: HashMap<(Token, u32), Inflight>,
    per_caller: HashMap<Token, usize>,
    lost: Vec<LostCall>,
}

impl CallTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks that `caller` may have one more call tracked under a cap of `max_per_caller`.
    pub fn check_room(&self, caller: Token, max_per_caller: usize) -> Result<(), Refused> {
        if self.per_caller.get(&caller).copied().unwrap_or(0) >= max_per_caller {
            return Err(Refused::CallerFull);
        }
        if self.inflight.len() >= MAX_TRACKED_CALLS {
            return Err(Refused::TableFull);
        }
        Ok(())
    }

    /// Starts tracking a call (after [`CallTracker::check_room`]). A session
    /// the caller reuses replaces its older entry.
    pub fn track(&mut self, caller: Token, session: u32, mode: Mode, waiting: Vec<Node>) {
        let previous = self.inflight.insert((caller, session), Inflight { mode, waiting });
        if previous.is_none() {
            *self.per_caller.entry(caller).or_insert(0) += 1;
        }
    }

    fn remove(&mut self, caller: Token, session: u32) {
        if self.inflight.remove(&(caller, session)).is_some() {
            self.uncount(caller, 1);
        }
    }

    fn uncount(&mut self, caller: Token, calls: usize) {
        if let Some(count) = self.per_caller.get_mut(&caller) {
            *count = count.saturating_sub(calls);
            if *count == 0 {
                self.per_caller.remove(&caller);
            }
        }
    }

    /// An answer from `receiver` to `caller` passed through: stop waiting for it.
    pub fn settle(&mut self, caller: Token, session: u32, receiver: Token) {
        if let Some(call) = self.inflight.get_mut(&(caller, session)) {
            call.waiting.retain(|&(_, token)| token != receiver);
            if call.waiting.is_empty() {
                self.remove(caller, session);
            }
        }
    }

    /// The caller gave up on a call (its timeout fired).
    pub fn cancel(&mut self, caller: Token, session: u32) {
        self.remove(caller, session);
    }

    /// A stream went away: drop the calls it made, and note the calls that
    /// waited for it, for [`CallTracker::take_lost`].
    pub fn forget(&mut self, gone: Token) {
        if self.inflight.is_empty() {
            return;
        }
        self.per_caller.remove(&gone);
        let lost = &mut self.lost;
        let mut settled: HashMap<Token, usize> = HashMap::new();
        self.inflight.retain(|&(caller, session), call| {
            if caller == gone {
                return false;
            }
            call.waiting.retain(|&(id, token)| {
                if token != gone {
                    return true;
                }
                lost.push(LostCall {
                    caller,
                    session,
                    mode: call.mode,
                    receiver_id: id,
                });
                false
            });
            if call.waiting.is_empty() {
                *settled.entry(caller).or_insert(0) += 1;
                return false;
            }
            true
        });
        for (caller, calls) in settled {
            self.uncount(caller, calls);
        }
    }

    /// The calls whose receiver went away since the last call.
    pub fn take_lost(&mut self) -> Vec<LostCall> {
        std::mem::take(&mut self.lost)
    }

    /// True when lost calls wait to be reported.
    pub fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Calls tracked now.
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    /// True when no call is tracked.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Calls tracked now for one caller.
    pub fn count_of(&self, caller: Token) -> usize {
        self.per_caller.get(&caller).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: Token = 10;
    const OTHER: Token = 11;
    const CALLEE: Token = 20;

    #[test]
    fn answers_settle_and_free_the_callers_room() {
        let mut calls = CallTracker::new();
        calls.track(CALLER, 1, Mode::Target, vec![(7, CALLEE)]);
        assert_eq!(calls.count_of(CALLER), 1);
        calls.settle(CALLER, 1, OTHER); // not the receiver: still waiting
        assert_eq!(calls.len(), 1);
        calls.settle(CALLER, 1, CALLEE);
        assert!(calls.is_empty());
        assert_eq!(calls.count_of(CALLER), 0);
    }

    #[test]
    fn a_broadcast_waits_for_every_receiver() {
        let mut calls = CallTracker::new();
        calls.track(CALLER, 5, Mode::Broadcast, vec![(1, 21), (2, 22)]);
        calls.settle(CALLER, 5, 21);
        assert_eq!(calls.len(), 1);
        calls.forget(22);
        assert!(calls.is_empty());
        assert_eq!(
            calls.take_lost(),
            vec![LostCall {
                caller: CALLER,
                session: 5,
                mode: Mode::Broadcast,
                receiver_id: 2
            }]
        );
        assert_eq!(calls.count_of(CALLER), 0);
    }

    #[test]
    fn a_departed_caller_takes_its_calls_along() {
        let mut calls = CallTracker::new();
        calls.track(CALLER, 1, Mode::Hash, vec![(7, CALLEE)]);
        calls.track(OTHER, 1, Mode::Hash, vec![(7, CALLEE)]);
        calls.forget(CALLER);
        assert_eq!(calls.len(), 1);
        assert!(!calls.has_lost());
        calls.forget(CALLEE);
        assert_eq!(calls.take_lost().len(), 1);
        assert!(calls.is_empty());
    }

    #[test]
    fn the_per_caller_cap_leaves_room_for_others() {
        let mut calls = CallTracker::new();
        for session in 0..3 {
            assert_eq!(calls.check_room(CALLER, 3), Ok(()));
            calls.track(CALLER, session, Mode::Target, vec![(7, CALLEE)]);
        }
        assert_eq!(calls.check_room(CALLER, 3), Err(Refused::CallerFull));
        assert_eq!(calls.check_room(OTHER, 3), Ok(()));
        // A reused session replaces its entry without using more room.
        calls.track(CALLER, 2, Mode::Target, vec![(7, CALLEE)]);
        assert_eq!(calls.count_of(CALLER), 3);
        calls.cancel(CALLER, 0);
        assert_eq!(calls.check_room(CALLER, 3), Ok(()));
    }
}
