//! Publish/subscribe on a router: a published payload goes to every
//! subscriber of its topic as a `Deliver` frame, untouched; a retained one is
//! also kept for subscribers that come later (`crate::route::pubsub`).

use super::frame::{Header, Kind};
use super::{NetCore, NetError, SendError, Token};
use crate::log;
use crate::route::pubsub::PubSubError;

impl NetCore {
    /// Passes a `Publish` frame's payload to the subscribers of its topic.
    pub fn publish(&mut self, from: Token, retain: bool, topic: &[u8], payload: &[u8]) {
        let Some(mgr) = self.stream_ref(from).map(|s| s.mgr as usize) else {
            return;
        };
        let manager = &mut self.managers[mgr];
        manager.stats.published += 1;
        if retain && let Err(error) = manager.topics.retain(topic, payload) {
            manager.stats.retain_refused += 1;
            log::warn(&format!(
                "publish on '{}' from {}: not retained ({})",
                String::from_utf8_lossy(topic),
                self.peer_of(from),
                error.as_str()
            ));
        }
        let mut subscribers = std::mem::take(&mut self.fanout);
        subscribers.extend_from_slice(self.managers[mgr].topics.subscribers(topic));
        if subscribers.is_empty() {
            self.managers[mgr].stats.published_unheard += 1;
        }
        for &subscriber in &subscribers {
            if self.deliver_payload(subscriber, payload).is_err() {
                self.managers[mgr].stats.forward_failed += 1;
            }
        }
        subscribers.clear();
        self.fanout = subscribers;
    }

    /// Subscribes a stream to a topic of its manager; the topic's retained
    /// message, if any, is delivered to it at once. A token that is no open
    /// stream is refused (`closed`).
    pub fn subscribe(&mut self, token: Token, topic: &[u8]) -> Result<(), PubSubError> {
        let Some(mgr) = self.stream_ref(token).map(|s| s.mgr as usize) else {
            return Err(PubSubError::Closed);
        };
        let manager = &mut self.managers[mgr];
        let retained = match manager.topics.subscribe(topic, token) {
            Ok(retained) => retained.map(<[u8]>::to_vec),
            Err(error) => {
                manager.stats.subscriptions_refused += 1;
                return Err(error);
            }
        };
        // Send-buffer-full also closes the subscriber; package-too-large (the
        // package size was lowered since it was retained) does not: both are
        // counted and logged, as a publish counts its failed deliveries.
        if let Some(payload) = retained
            && let Err(error) = self.deliver_payload(token, &payload)
        {
            self.managers[mgr].stats.forward_failed += 1;
            log::warn(&format!(
                "subscribe to '{}': the retained message ({} bytes) was not delivered: {error}",
                String::from_utf8_lossy(topic),
                payload.len()
            ));
        }
        Ok(())
    }

    /// Ends a subscription; true if there was one.
    pub fn unsubscribe(&mut self, token: Token, topic: &[u8]) -> bool {
        match self.stream_ref(token).map(|s| s.mgr as usize) {
            Some(mgr) => self.managers[mgr].topics.unsubscribe(topic, token),
            None => false,
        }
    }

    /// Queues `payload` on a stream as a `Deliver` frame.
    pub(super) fn deliver_payload(&mut self, receiver: Token, payload: &[u8]) -> Result<usize, NetError> {
        self.send_with(receiver, Kind::Deliver, Header::None, |out| {
            out.extend_from_slice(payload);
            Ok::<(), ()>(())
        })
        .map_err(|error| match error {
            SendError::Net(error) => error,
            SendError::Encode(()) => NetError::BadPackage,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runtime::poller::Poller;

    #[test]
    fn a_token_that_is_no_open_stream_cannot_subscribe() {
        let mut net = NetCore::new(Arc::new(Poller::new().expect("a poller")));
        assert_eq!(net.subscribe(42, b"news"), Err(PubSubError::Closed));
        assert_eq!(PubSubError::Closed.as_str(), "closed");
    }
}
