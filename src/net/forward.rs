//! Router forwarding and the tracking of routed calls.
//!
//! A forward's payload is copied to the chosen receivers untouched: the
//! router reads only the route header. A forward that carries a session is a
//! call whose answer the router tracks, so that when the receiver goes away
//! the caller hears `connection-lost` at once instead of waiting for its
//! timeout. The answer (a forward flagged as a reply) settles the entry; the
//! caller's `Cancel` or departure drops it.

use super::frame::{self, ForwardFailure, Kind, Mode, Route};
use super::{Entry, NetCore, SendError, Token, errors};
use crate::log;
use crate::route::Node;

/// Most calls one process tracks for answers at once.
const MAX_TRACKED_CALLS: usize = 1 << 20;

/// A tracked call: how it was routed and who has not answered yet.
pub(super) struct Inflight {
    mode: Mode,
    /// (token, service id) of each receiver still expected to answer.
    waiting: Vec<Node>,
}

/// A tracked call whose receiver went away.
pub(super) struct LostCall {
    caller: Token,
    session: u32,
    mode: Mode,
    receiver_id: u32,
}

impl NetCore {
    /// Passes a `Forward` frame's payload to the receivers its route picks.
    pub fn forward(&mut self, from: Token, route: &Route, payload: &[u8]) {
        let Some(Entry::Stream(stream)) = self.slot(from) else {
            return;
        };
        let mgr = stream.mgr as usize;
        let routes = &mut self.managers[mgr].routes;
        let single = match route.mode {
            Mode::Target => Some(routes.target(route.target)),
            Mode::Master => Some(routes.master(route.target)),
            Mode::Random => Some(routes.random(route.target)),
            Mode::Hash => Some(routes.hash(route.target, route.key)),
            Mode::Broadcast => None,
        };
        let failure = match single {
            Some(Some(receiver)) => {
                let delivered = self.deliver(receiver.1, payload);
                if delivered.is_ok() && route.session != 0 {
                    if route.is_reply {
                        self.settle(receiver.1, route.session, from);
                    } else {
                        self.track(from, route, vec![receiver]);
                    }
                }
                delivered.err()
            }
            Some(None) => Some(ForwardFailure::NoRoute),
            None => self.broadcast(from, route, payload),
        };
        let stats = &mut self.managers[mgr].stats;
        match failure {
            None => stats.forwarded += 1,
            Some(failure) => {
                stats.forward_failed += 1;
                self.report_forward_failure(from, failure, route, payload);
            }
        }
    }

    fn broadcast(&mut self, from: Token, route: &Route, payload: &[u8]) -> Option<ForwardFailure> {
        let Some(Entry::Stream(stream)) = self.slot(from) else {
            return None;
        };
        let receivers = self.managers[stream.mgr as usize].routes.broadcast(route.target);
        let mut reached = Vec::with_capacity(receivers.len());
        let mut failures = Vec::new();
        for receiver in receivers {
            match self.deliver(receiver.1, payload) {
                Ok(()) => reached.push(receiver),
                Err(failure) => failures.push(failure),
            }
        }
        if reached.is_empty() {
            return Some(failures.first().copied().unwrap_or(ForwardFailure::NoRoute));
        }
        // Some receivers got it: report each one that did not.
        for failure in failures {
            self.report_forward_failure(from, failure, route, payload);
        }
        if route.session != 0 {
            // Tell the caller whose answers to wait for.
            if let Some(stream) = self.stream(from) {
                let out = stream.output_mut();
                let start = out.len();
                frame::push_routed(out, route.session, reached.iter().map(|&(id, _)| id));
                let _ = self.queued(from, start); // a failure closes the caller's stream
            }
            self.track(from, route, reached);
        }
        None
    }

    fn deliver(&mut self, receiver: Token, payload: &[u8]) -> Result<(), ForwardFailure> {
        let result = self.send_with(receiver, Kind::Deliver, None, |out| {
            out.extend_from_slice(payload);
            Ok::<(), ()>(())
        });
        match result {
            Ok(_) => Ok(()),
            Err(SendError::Net(errors::SEND_BUFFER_FULL)) => Err(ForwardFailure::SendBufferFull),
            Err(_) => Err(ForwardFailure::NoRoute),
        }
    }

    fn report_forward_failure(&mut self, to: Token, failure: ForwardFailure, route: &Route, payload: &[u8]) {
        let Some(stream) = self.stream(to) else { return };
        let out = stream.output_mut();
        let start = out.len();
        frame::push_forward_error(out, failure, route, payload);
        let _ = self.queued(to, start); // a failure closes the sender's stream
    }

    fn track(&mut self, caller: Token, route: &Route, waiting: Vec<Node>) {
        // A caller that neither cancels nor leaves, calling a callee that never
        // answers, would grow this table forever: past the cap, calls go untracked.
        if self.inflight.len() >= MAX_TRACKED_CALLS {
            if !self.tracking_full_logged {
                self.tracking_full_logged = true;
                log::warn(&format!(
                    "router: {MAX_TRACKED_CALLS} calls are waiting for answers; newer calls are not tracked \
                     (their callers learn of a lost callee only at their timeout)"
                ));
            }
            return;
        }
        self.tracking_full_logged = false;
        self.inflight.insert(
            (caller, route.session),
            Inflight {
                mode: route.mode,
                waiting,
            },
        );
    }

    /// An answer from `receiver` to `caller` passed through: stop waiting for it.
    fn settle(&mut self, caller: Token, session: u32, receiver: Token) {
        if let Some(call) = self.inflight.get_mut(&(caller, session)) {
            call.waiting.retain(|&(_, token)| token != receiver);
            if call.waiting.is_empty() {
                self.inflight.remove(&(caller, session));
            }
        }
    }

    /// The caller gave up on a tracked call (its timeout fired).
    pub fn cancel_call(&mut self, caller: Token, session: u32) {
        self.inflight.remove(&(caller, session));
    }

    /// A stream went away: drop the calls it made, and note the calls that
    /// waited for it so their callers hear `connection-lost`.
    pub(super) fn forget_calls_of(&mut self, gone: Token) {
        if self.inflight.is_empty() {
            return;
        }
        let lost = &mut self.lost;
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
            !call.waiting.is_empty()
        });
    }

    /// Sends the `connection-lost` reports noted by [`NetCore::forget_calls_of`].
    pub(super) fn report_lost_calls(&mut self) {
        for lost in std::mem::take(&mut self.lost) {
            let route = Route {
                mode: lost.mode,
                target: lost.receiver_id,
                key: 0,
                session: lost.session,
                is_reply: false,
            };
            self.report_forward_failure(lost.caller, ForwardFailure::ConnectionLost, &route, &[]);
        }
    }

    /// Number of routed calls waiting for an answer.
    pub fn inflight_calls(&self) -> usize {
        self.inflight.len()
    }
}
