//! Publish/subscribe on a router: which streams subscribe to which topic,
//! and the retained (latest) message of state topics.
//!
//! The router fans a published payload out to the subscribers without
//! decoding it. Everything a peer can make this table hold is bounded:
//! subscriptions per stream, topics per manager, and bytes of retained
//! messages.

use std::collections::HashMap;

use super::Token;

/// Longest topic name in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Default most topics one stream may subscribe to.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 4096;
/// Default most topics a manager keeps (with subscribers or a retained message).
pub const DEFAULT_MAX_TOPICS: usize = 65_536;
/// Default most bytes of retained messages a manager keeps.
pub const DEFAULT_MAX_RETAINED_BYTES: usize = 64 << 20;

/// Why a subscription or a retained message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubSubError {
    /// The topic name is empty or too long.
    BadTopic,
    /// The stream subscribes to as many topics as it may.
    TooManySubscriptions,
    /// The manager keeps as many topics as it may.
    TooManyTopics,
    /// Retained messages would pass their byte cap.
    RetainedFull,
    /// The subscriber is not an open stream (it closed before it subscribed).
    Closed,
}

impl PubSubError {
    /// The error string scripts see.
    pub fn as_str(self) -> &'static str {
        match self {
            PubSubError::BadTopic => "invalid-param",
            PubSubError::TooManySubscriptions => "too-many-subscriptions",
            PubSubError::TooManyTopics => "too-many-topics",
            PubSubError::RetainedFull => "retained-full",
            PubSubError::Closed => "closed",
        }
    }
}

/// Caps of one manager's topics.
#[derive(Debug, Clone, Copy)]
pub struct PubSubLimits {
    /// Most topics one stream may subscribe to.
    pub max_subscriptions: usize,
    /// Most topics kept.
    pub max_topics: usize,
    /// Most bytes of retained messages.
    pub max_retained_bytes: usize,
}

impl Default for PubSubLimits {
    fn default() -> Self {
        PubSubLimits {
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            max_topics: DEFAULT_MAX_TOPICS,
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
        }
    }
}

#[derive(Default)]
struct Topic {
    /// Subscribed streams, in subscription order, each once.
    subscribers: Vec<Token>,
    /// The latest retained message, delivered first to new subscribers.
    retained: Option<Vec<u8>>,
}

/// The topics of one manager.
#[derive(Default)]
pub struct Topics {
    topics: HashMap<Vec<u8>, Topic>,
    per_token: HashMap<Token, usize>,
    retained_bytes: usize,
    /// Caps.
    pub limits: PubSubLimits,
}

fn check_topic(topic: &[u8]) -> Result<(), PubSubError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(PubSubError::BadTopic);
    }
    Ok(())
}

impl Topics {
    /// Subscribes `token` to `topic`; returns the retained message to deliver
    /// to it first, if any. Subscribing twice is one subscription.
    pub fn subscribe(&mut self, topic: &[u8], token: Token) -> Result<Option<&[u8]>, PubSubError> {
        check_topic(topic)?;
        // Checked before anything is added, so a refusal leaves nothing behind.
        let subscribed = match self.topics.get(topic) {
            Some(entry) => entry.subscribers.contains(&token),
            None if self.topics.len() >= self.limits.max_topics => return Err(PubSubError::TooManyTopics),
            None => false,
        };
        if !subscribed {
            if self.per_token.get(&token).copied().unwrap_or(0) >= self.limits.max_subscriptions {
                return Err(PubSubError::TooManySubscriptions);
            }
            *self.per_token.entry(token).or_insert(0) += 1;
            if !self.topics.contains_key(topic) {
                self.topics.insert(topic.to_vec(), Topic::default()); // the key is copied for new topics only
            }
        }
        let entry = self.topics.get_mut(topic).ok_or(PubSubError::BadTopic)?;
        if !subscribed {
            entry.subscribers.push(token);
        }
        Ok(entry.retained.as_deref())
    }

    /// Ends a subscription; true if there was one.
    pub fn unsubscribe(&mut self, topic: &[u8], token: Token) -> bool {
        let Some(entry) = self.topics.get_mut(topic) else {
            return false;
        };
        let Some(at) = entry.subscribers.iter().position(|&t| t == token) else {
            return false;
        };
        entry.subscribers.remove(at);
        if entry.subscribers.is_empty() && entry.retained.is_none() {
            self.topics.remove(topic);
        }
        self.uncount(token, 1);
        true
    }

    fn uncount(&mut self, token: Token, by: usize) {
        if let Some(count) = self.per_token.get_mut(&token) {
            *count = count.saturating_sub(by);
            if *count == 0 {
                self.per_token.remove(&token);
            }
        }
    }

    /// A stream went away: it leaves every topic.
    pub fn forget(&mut self, token: Token) {
        if self.per_token.remove(&token).is_none() {
            return;
        }
        self.topics.retain(|_, topic| {
            topic.subscribers.retain(|&t| t != token);
            !topic.subscribers.is_empty() || topic.retained.is_some()
        });
    }

    /// The subscribers of a topic.
    pub fn subscribers(&self, topic: &[u8]) -> &[Token] {
        self.topics.get(topic).map_or(&[], |t| t.subscribers.as_slice())
    }

    /// Keeps `payload` as the topic's retained message (replacing the last one).
    pub fn retain(&mut self, topic: &[u8], payload: &[u8]) -> Result<(), PubSubError> {
        check_topic(topic)?;
        let max_bytes = self.limits.max_retained_bytes;
        // A known topic (the usual case of a state topic): one lookup and no
        // copy of the key. The message gets a buffer of its own size (reusing
        // the last one could keep a larger capacity than the cap counts).
        if let Some(entry) = self.topics.get_mut(topic) {
            let old = entry.retained.as_ref().map_or(0, Vec::len);
            if self.retained_bytes - old + payload.len() > max_bytes {
                return Err(PubSubError::RetainedFull);
            }
            self.retained_bytes = self.retained_bytes - old + payload.len();
            entry.retained = Some(payload.to_vec());
            return Ok(());
        }
        if self.retained_bytes + payload.len() > max_bytes {
            return Err(PubSubError::RetainedFull);
        }
        if self.topics.len() >= self.limits.max_topics {
            return Err(PubSubError::TooManyTopics);
        }
        self.retained_bytes += payload.len();
        let topic_entry = Topic {
            subscribers: Vec::new(),
            retained: Some(payload.to_vec()),
        };
        self.topics.insert(topic.to_vec(), topic_entry);
        Ok(())
    }

    /// Topics kept now.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// True when no topic is kept.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// Bytes of retained messages kept now.
    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_once_each_and_gone_with_their_stream() {
        let mut topics = Topics::default();
        assert_eq!(topics.subscribe(b"news", 1), Ok(None));
        assert_eq!(topics.subscribe(b"news", 2), Ok(None));
        assert_eq!(topics.subscribe(b"news", 1), Ok(None));
        assert_eq!(topics.subscribers(b"news"), &[1, 2]);
        assert!(topics.unsubscribe(b"news", 1));
        assert!(!topics.unsubscribe(b"news", 1));
        topics.forget(2);
        assert!(topics.subscribers(b"news").is_empty());
        assert!(topics.is_empty(), "a topic with nobody and nothing retained goes");
    }

    #[test]
    fn a_retained_message_is_replaced_and_given_to_late_subscribers() {
        let mut topics = Topics::default();
        topics.retain(b"state", b"v1").unwrap();
        topics.retain(b"state", b"version 2").unwrap();
        assert_eq!(topics.retained_bytes(), 9);
        assert_eq!(topics.subscribe(b"state", 5), Ok(Some(&b"version 2"[..])));
        topics.forget(5);
        assert_eq!(topics.len(), 1, "the retained message stays");
    }

    #[test]
    fn retaining_on_a_new_topic_is_bounded_and_a_replacement_is_counted_once() {
        let mut topics = Topics {
            limits: PubSubLimits {
                max_subscriptions: 4,
                max_topics: 1,
                max_retained_bytes: 8,
            },
            ..Topics::default()
        };
        assert_eq!(topics.retain(b"a", b"123456789"), Err(PubSubError::RetainedFull));
        assert!(topics.is_empty(), "a refused retain leaves no topic behind");
        topics.retain(b"a", b"12345678").unwrap();
        assert_eq!(topics.retain(b"b", b"1"), Err(PubSubError::RetainedFull));
        topics.retain(b"a", b"1").unwrap();
        assert_eq!(topics.retained_bytes(), 1);
        assert_eq!(topics.retain(b"b", b"1"), Err(PubSubError::TooManyTopics));
        assert_eq!(topics.subscribe(b"b", 1), Err(PubSubError::TooManyTopics));
        assert_eq!(topics.subscribe(b"a", 1), Ok(Some(&b"1"[..])));
        assert_eq!(topics.len(), 1);
    }

    #[test]
    fn every_cap_holds() {
        let mut topics = Topics {
            limits: PubSubLimits {
                max_subscriptions: 2,
                max_topics: 3,
                max_retained_bytes: 10,
            },
            ..Topics::default()
        };
        assert_eq!(topics.subscribe(b"", 1), Err(PubSubError::BadTopic));
        assert_eq!(topics.subscribe(&[b'x'; 256], 1), Err(PubSubError::BadTopic));
        topics.subscribe(b"a", 1).unwrap();
        topics.subscribe(b"b", 1).unwrap();
        assert_eq!(topics.subscribe(b"c", 1), Err(PubSubError::TooManySubscriptions));
        assert_eq!(topics.len(), 2, "a refused subscription leaves no topic behind");
        topics.subscribe(b"c", 2).unwrap();
        assert_eq!(topics.subscribe(b"d", 2), Err(PubSubError::TooManyTopics));
        assert_eq!(topics.retain(b"a", b"12345678901"), Err(PubSubError::RetainedFull));
        topics.retain(b"a", b"1234567890").unwrap();
        assert_eq!(topics.retain(b"b", b"x"), Err(PubSubError::RetainedFull));
        assert_eq!(PubSubError::TooManyTopics.as_str(), "too-many-topics");
    }
}
