//! The socket-slot table: every open listener and stream by token.
//!
//! A token is a slot index (the poller key) and the slot's generation: a slot
//! is reused after its socket closes, with a new generation, so a token kept
//! by a script after the close never reaches the new socket. The check lives
//! in [`Slots::get`] and [`Slots::get_mut`] only.

use super::Token;
use super::accept::Listener;
use super::stream::Stream;

/// What a slot holds. Streams sit inline in the table (one less pointer
/// chase per event); listeners are few, so the space they waste does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Entry {
    Listener(Listener),
    Stream(Stream),
}

impl Entry {
    /// The manager that owns the socket.
    pub(super) fn mgr(&self) -> u32 {
        match self {
            Entry::Listener(listener) => listener.mgr,
            Entry::Stream(stream) => stream.mgr,
        }
    }
}

struct Slot {
    /// Never 0, so no token is 0.
    generation: u32,
    socket: Option<Entry>,
}

/// Token of slot `index` in `generation`.
pub(super) fn token_of(index: u32, generation: u32) -> Token {
    u64::from(generation) << 32 | u64::from(index)
}

/// The slot index (poller key) of a token.
pub(super) fn index_of(token: Token) -> usize {
    (token & 0xffff_ffff) as usize
}

/// Slots by index, with a free list of closed ones.
#[derive(Default)]
pub(super) struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    /// Puts a socket in a free slot; returns its token.
    pub(super) fn insert(&mut self, entry: Entry) -> Token {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    generation: 1,
                    socket: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.socket = Some(entry);
        token_of(index, slot.generation)
    }

    fn live(&self, token: Token) -> Option<&Slot> {
        let slot = self.slots.get(index_of(token))?;
        (token_of(index_of(token) as u32, slot.generation) == token).then_some(slot)
    }

    /// The socket of a token, if it is still open.
    pub(super) fn get(&self, token: Token) -> Option<&Entry> {
        self.live(token)?.socket.as_ref()
    }

    /// The socket of a token, if it is still open.
    pub(super) fn get_mut(&mut self, token: Token) -> Option<&mut Entry> {
        self.live(token)?;
        self.slots[index_of(token)].socket.as_mut()
    }

    /// Takes a socket out; its slot gets a new generation and is free again.
    pub(super) fn remove(&mut self, token: Token) -> Option<Entry> {
        self.live(token)?;
        let index = index_of(token);
        let slot = &mut self.slots[index];
        let entry = slot.socket.take()?;
        slot.generation = slot.generation.wrapping_add(1).max(1);
        self.free.push(index as u32);
        Some(entry)
    }

    /// The token of the socket under poller key `key`.
    pub(super) fn token_at(&self, key: usize) -> Option<Token> {
        let slot = self.slots.get(key)?;
        slot.socket.as_ref()?;
        Some(token_of(key as u32, slot.generation))
    }

    /// Every open socket with its token.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Token, &Entry)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let entry = slot.socket.as_ref()?;
            Some((token_of(index as u32, slot.generation), entry))
        })
    }

    /// Every open stream with its token.
    pub(super) fn streams(&self) -> impl Iterator<Item = (Token, &Stream)> {
        self.iter().filter_map(|(token, entry)| match entry {
            Entry::Stream(stream) => Some((token, stream)),
            Entry::Listener(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::stream::State;
    use super::*;

    fn stream(mgr: u32) -> Entry {
        Entry::Stream(Stream::new(mgr, State::Open, None, "peer".into(), 1))
    }

    #[test]
    fn a_stale_token_never_reaches_the_socket_that_reuses_its_slot() {
        let mut slots = Slots::default();
        let first = slots.insert(stream(0));
        assert!(slots.get(first).is_some());
        assert!(slots.remove(first).is_some());
        assert!(slots.get(first).is_none());
        assert!(slots.remove(first).is_none(), "removed once only");
        let second = slots.insert(stream(1));
        assert_eq!(index_of(second), index_of(first), "the slot is reused");
        assert_ne!(second, first);
        assert!(slots.get(first).is_none() && slots.get_mut(first).is_none());
        assert_eq!(slots.get(second).map(Entry::mgr), Some(1));
        assert_eq!(slots.token_at(index_of(second)), Some(second));
    }

    #[test]
    fn tokens_are_never_zero_and_iteration_sees_open_sockets_only() {
        let mut slots = Slots::default();
        let tokens: Vec<Token> = (0..4).map(|mgr| slots.insert(stream(mgr))).collect();
        assert!(tokens.iter().all(|&t| t != 0));
        slots.remove(tokens[1]);
        let open: Vec<Token> = slots.iter().map(|(token, _)| token).collect();
        assert_eq!(open, vec![tokens[0], tokens[2], tokens[3]]);
        assert_eq!(slots.streams().count(), 3);
        assert_eq!(slots.token_at(index_of(tokens[1])), None);
        assert_eq!(slots.token_at(99), None);
    }
}
