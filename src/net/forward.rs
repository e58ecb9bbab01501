//! Router forwarding: a forward's payload is copied to the chosen receivers
//! untouched; the router reads only the route header. Calls (forwards with a
//! session) are tracked by [`super::calls::CallTracker`].

use super::NetError;
use super::calls::Refused;
use super::frame::{self, ForwardFailure, Mode, Route};
use super::slots::Entry;
use super::{NetCore, Token};
use crate::log;

impl NetCore {
    /// Passes a `Forward` frame's payload to the receivers its route picks.
    pub fn forward(&mut self, from: Token, route: &Route, payload: &[u8]) {
        let Some(Entry::Stream(stream)) = self.slot(from) else {
            return;
        };
        let mgr = stream.mgr as usize;
        let failure = if route.session != 0 && !route.is_reply && !self.may_track(from, mgr) {
            Some(ForwardFailure::TooManyCalls)
        } else {
            self.route_and_deliver(from, mgr, route, payload)
        };
        let stats = &mut self.managers[mgr].stats;
        match failure {
            None => stats.forwarded += 1,
            Some(failure) => {
                stats.forward_failed += 1;
                if failure == ForwardFailure::TooManyCalls {
                    stats.calls_refused += 1;
                }
                self.report_forward_failure(from, failure, route, payload);
            }
        }
    }

    fn route_and_deliver(&mut self, from: Token, mgr: usize, route: &Route, payload: &[u8]) -> Option<ForwardFailure> {
        let routes = &mut self.managers[mgr].routes;
        let single = match route.mode {
            Mode::Target => Some(routes.target(route.target)),
            Mode::Master => Some(routes.master(route.target)),
            Mode::Random => Some(routes.random(route.target)),
            Mode::Hash => Some(routes.hash(route.target, route.key)),
            Mode::Broadcast => None,
        };
        match single {
            Some(Some(receiver)) => {
                let delivered = self.deliver(receiver.1, payload);
                if delivered.is_ok() && route.session != 0 {
                    if route.is_reply {
                        self.calls.settle(receiver.1, route.session, from);
                    } else {
                        self.calls.track(from, route.session, route.mode, vec![receiver]);
                    }
                }
                delivered.err()
            }
            Some(None) => Some(ForwardFailure::NoRoute),
            None => self.broadcast(from, mgr, route, payload),
        }
    }

    /// True when a call from `caller` may be tracked; logs when the
    /// process-wide table is full (once until it has room again).
    fn may_track(&mut self, caller: Token, mgr: usize) -> bool {
        let cap = self.managers[mgr].limits.max_tracked_calls;
        match self.calls.check_room(caller, cap) {
            Ok(()) => {
                self.tracking_full_logged = false;
                true
            }
            Err(Refused::CallerFull) => false,
            Err(Refused::TableFull) => {
                if !self.tracking_full_logged {
                    self.tracking_full_logged = true;
                    log::warn(&format!(
                        "router: {} calls are waiting for answers in this process; newer calls fail with \
                         too-many-calls until some are answered",
                        super::calls::MAX_TRACKED_CALLS
                    ));
                }
                false
            }
        }
    }

    fn broadcast(&mut self, from: Token, mgr: usize, route: &Route, payload: &[u8]) -> Option<ForwardFailure> {
        let receivers = self.managers[mgr].routes.broadcast(route.target);
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
            self.calls.track(from, route.session, route.mode, reached);
        }
        None
    }

    fn deliver(&mut self, receiver: Token, payload: &[u8]) -> Result<(), ForwardFailure> {
        match self.deliver_payload(receiver, payload) {
            Ok(_) => Ok(()),
            Err(NetError::SendBufferFull) => Err(ForwardFailure::SendBufferFull),
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

    /// The caller gave up on a tracked call (its timeout fired).
    pub fn cancel_call(&mut self, caller: Token, session: u32) {
        self.calls.cancel(caller, session);
    }

    /// Sends `connection-lost` to the callers of tracked calls whose receiver went away.
    pub fn report_lost_calls(&mut self) {
        if !self.calls.has_lost() {
            return;
        }
        for lost in self.calls.take_lost() {
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
        self.calls.len()
    }
}
