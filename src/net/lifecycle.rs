//! The life of a socket in the slot table: adopted (counted on its
//! manager), closed at the script's request, failed, released. The manager's
//! `open` count changes here only.

use std::os::fd::AsRawFd;
use std::time::Instant;

use super::slots::Entry;
use super::stream::State;
use super::{CLOSE_FLUSH_DEADLINE, NetCore, NetError, NetTimer, Notice, Token};

impl NetCore {
    /// Puts a new socket in the slot table and counts it on its manager.
    pub(super) fn adopt(&mut self, entry: Entry) -> Token {
        if let Some(manager) = self.managers.get_mut(entry.mgr() as usize) {
            manager.open += 1;
        }
        self.slots.insert(entry)
    }

    /// Closes a listener or stream at the script's request: a stream first
    /// flushes what it queued (bounded by a deadline). No notice follows.
    pub fn close(&mut self, token: Token) -> bool {
        if let Some(Entry::Stream(stream)) = self.slot_mut(token)
            && stream.state == State::Open
            && stream.secure.is_none()
            && let Some(tls) = stream.tls.as_mut()
        {
            tls.close(); // close_notify, written by the closing flush
        }
        match self.slot_mut(token) {
            Some(Entry::Stream(stream)) if stream.state == State::Open && stream.has_output() => {
                stream.state = State::Closing;
                let old = stream.deadline_timer.take();
                if let Some(old) = old {
                    self.timers.cancel(old);
                }
                let timer = self
                    .timers
                    .add_at(Instant::now() + CLOSE_FLUSH_DEADLINE, None, NetTimer::Deadline(token));
                if let Some(stream) = self.stream(token) {
                    stream.deadline_timer = Some(timer);
                }
                self.mark_dirty(token);
                true
            }
            Some(Entry::Stream(stream)) if stream.state == State::Closing => true,
            Some(_) => {
                self.release(token);
                true
            }
            None => false,
        }
    }

    /// The peer finished sending. Output still queued (replies to what it
    /// sent) is flushed before closing, as a peer that half-closed may still read.
    pub(super) fn peer_closed(&mut self, token: Token) {
        let pending = self
            .stream(token)
            .is_some_and(|s| s.state == State::Open && s.secure.is_none() && s.has_output());
        if !pending {
            return self.fail(token, NetError::ConnectionLost);
        }
        self.notices
            .push_back(Notice::Closed(token, NetError::ConnectionLost, None));
        self.close(token);
    }

    /// Closes a stream on error and queues the notice for its script.
    pub fn fail(&mut self, token: Token, error: NetError) {
        self.fail_with(token, error, None);
    }

    /// Closes a stream on error, with what the system or the peer said, and
    /// queues the notice for its script: a connection that never became
    /// usable fails its connect; a link accepted but never secured was never
    /// shown to the script, so it just goes.
    pub fn fail_with(&mut self, token: Token, error: NetError, detail: Option<String>) {
        let Some(Entry::Stream(stream)) = self.slot(token) else {
            return;
        };
        let notice = match (stream.state, &stream.secure) {
            (State::Resolving | State::Connecting, _) => Some(Notice::ConnectFailed(token, error, detail)),
            (State::Open, Some(securing)) if securing.accepted_by.is_some() => None,
            (State::Open, Some(_)) => Some(Notice::ConnectFailed(token, error, detail)),
            (State::Open, None) => Some(Notice::Closed(token, error, detail)),
            (State::Closing, _) => None,
        };
        self.release(token);
        self.notices.extend(notice);
    }

    /// Removes a socket: from the poller, its timers, its manager's counts and the call tracking.
    pub(super) fn release(&mut self, token: Token) {
        let Some(entry) = self.slots.remove(token) else {
            return;
        };
        let mgr = entry.mgr();
        match &entry {
            Entry::Listener(listener) => {
                let _ = self.poller.delete(listener.socket.as_raw_fd());
            }
            Entry::Stream(stream) => {
                if let Some(socket) = &stream.socket {
                    let _ = self.poller.delete(socket.as_raw_fd());
                }
                let secure_timer = stream.secure.as_ref().and_then(|s| s.timer);
                for timer in [
                    stream.idle_timer,
                    stream.deadline_timer,
                    stream.frame_timer,
                    secure_timer,
                ]
                .into_iter()
                .flatten()
                {
                    self.timers.cancel(timer);
                }
                if let Some(manager) = self.managers.get_mut(mgr as usize) {
                    manager.pending_input = manager.pending_input.saturating_sub(stream.accounted_input);
                }
            }
        }
        if let Some(manager) = self.managers.get_mut(mgr as usize) {
            manager.open = manager.open.saturating_sub(1);
            manager.topics.forget(token);
        }
        self.calls.forget(token);
    }
}
