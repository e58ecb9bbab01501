//! The route table of a router: groups of service nodes, each node a stream token.
//!
//! Nodes are kept sorted by service id so every router that holds the same
//! registrations picks the same node for a hash key and the same master.

pub mod pubsub;
pub mod service_id;

use std::collections::HashMap;

/// Identifies a listener or stream for the life of the process (never 0);
/// in the route table, 0 keeps a slot without a stream.
pub type Token = u64;

/// Largest group number.
pub const MAX_GROUP: u32 = 255;

/// A node of a group: (service id, token).
pub type Node = (u32, Token);

/// Default most service ids one stream may hold.
pub const DEFAULT_MAX_IDS: usize = 4096;

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// Not a valid service id.
    InvalidId,
    /// The stream already holds as many ids as it may.
    TooManyIds,
}

/// How a group picks the node for a hash key.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashMode {
    /// `key % count` over the sorted nodes, walking past zero slots (the
    /// seeds' rule): adding a node to n moves about n/(n+1) of the keys.
    #[default]
    Modulo,
    /// Rendezvous (highest random weight) over the live nodes: each key goes
    /// to the node whose `score(key, id)` is highest, so adding or removing
    /// one of n nodes moves about 1/n of the keys, and only theirs.
    Rendezvous,
}

impl HashMode {
    /// The mode of a name scripts use ("modulo", "rendezvous").
    pub fn from_name(name: &str) -> Option<HashMode> {
        match name {
            "modulo" => Some(HashMode::Modulo),
            "rendezvous" => Some(HashMode::Rendezvous),
            _ => None,
        }
    }
}

/// The rendezvous score of `key` on service `id` (docs/protocol.md section 5):
/// splitmix64's finalizer over the key mixed with the mixed id.
pub fn rendezvous_score(key: u64, id: u32) -> u64 {
    mix64(key ^ mix64(u64::from(id)))
}

/// splitmix64's finalizer: a cheap, well-spread 64-bit mix.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Default, Clone)]
struct Group {
    /// Nodes sorted by service id.
    nodes: Vec<Node>,
    /// Explicit master token, 0 when none is set.
    master: Token,
    /// How hash keys pick a node.
    hash_mode: HashMode,
}

impl Group {
    fn live(&self) -> impl Iterator<Item = Node> + '_ {
        self.nodes.iter().copied().filter(|&(_, token)| token != 0)
    }

    /// The first non-zero slot at or after `start`, wrapping around.
    fn walk_from(&self, start: usize) -> Option<Node> {
        let count = self.nodes.len();
        (0..count)
            .map(|step| self.nodes[(start + step) % count])
            .find(|&(_, token)| token != 0)
    }
}

/// Groups 1..=255 and their nodes.
pub struct RouteTable {
    groups: Vec<Group>,
    rng_state: u64,
    /// How many ids each non-zero token holds.
    ids_per_token: HashMap<Token, usize>,
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        RouteTable {
            groups: vec![Group::default(); MAX_GROUP as usize + 1],
            rng_state: seed | 1,
            ids_per_token: HashMap::new(),
        }
    }

    fn group(&self, group: u32) -> Option<&Group> {
        self.groups.get(group as usize)
    }

    /// Sets the token of a service (0 keeps its slot), or removes it with `None`.
    /// Returns false when the id is not a valid service id.
    pub fn set(&mut self, service_id: u32, token: Option<Token>) -> bool {
        self.set_limited(service_id, token, usize::MAX).is_ok()
    }

    /// Like [`RouteTable::set`], refusing to give a stream more than `max_ids` ids.
    pub fn set_limited(&mut self, service_id: u32, token: Option<Token>, max_ids: usize) -> Result<(), RouteError> {
        if !service_id::is_valid(service_id) {
            return Err(RouteError::InvalidId);
        }
        let group = &mut self.groups[service_id::group(service_id) as usize];
        let found = group.nodes.binary_search_by_key(&service_id, |&(id, _)| id);
        let old = found.ok().map(|at| group.nodes[at].1);
        if let Some(new) = token
            && new != 0
            && old != Some(new)
            && self.ids_per_token.get(&new).copied().unwrap_or(0) >= max_ids
        {
            return Err(RouteError::TooManyIds);
        }
        match (found, token) {
            (Ok(at), Some(token)) => {
                if token != old.unwrap_or(0) && group.master == old.unwrap_or(0) {
                    group.master = 0;
                }
                group.nodes[at].1 = token;
            }
            (Err(at), Some(token)) => group.nodes.insert(at, (service_id, token)),
            (Ok(at), None) => {
                let (_, old) = group.nodes.remove(at);
                if group.master == old {
                    group.master = 0;
                }
            }
            (Err(_), None) => {}
        }
        if let Some(old) = old.filter(|&t| t != 0)
            && let Some(count) = self.ids_per_token.get_mut(&old)
        {
            *count -= 1;
            if *count == 0 {
                self.ids_per_token.remove(&old);
            }
        }
        if let Some(new) = token.filter(|&t| t != 0) {
            *self.ids_per_token.entry(new).or_insert(0) += 1;
        }
        Ok(())
    }

    /// How many service ids a stream holds.
    pub fn ids_of(&self, token: Token) -> usize {
        self.ids_per_token.get(&token).copied().unwrap_or(0)
    }

    /// Sets the explicit master of a group; 0 clears it. False for a bad group.
    pub fn set_master(&mut self, group: u32, token: Token) -> bool {
        if !service_id::is_valid_group(i64::from(group)) {
            return false;
        }
        self.groups[group as usize].master = token;
        true
    }

    /// The node of one service, if its token is live.
    pub fn target(&self, service_id: u32) -> Option<Node> {
        let group = self.group(service_id::group(service_id))?;
        let at = group.nodes.binary_search_by_key(&service_id, |&(id, _)| id).ok()?;
        Some(group.nodes[at]).filter(|&(_, token)| token != 0)
    }

    /// The explicit master, else the first node in id order with a live token.
    pub fn master(&self, group: u32) -> Option<Node> {
        let group = self.group(group)?;
        if group.master != 0 {
            let id = group
                .nodes
                .iter()
                .find(|&&(_, token)| token == group.master)
                .map_or(0, |&(id, _)| id);
            return Some((id, group.master));
        }
        group.live().next()
    }

    /// The node for `key`, by the group's [`HashMode`].
    pub fn hash(&self, group: u32, key: u64) -> Option<Node> {
        let group = self.group(group)?;
        if group.nodes.is_empty() {
            return None;
        }
        match group.hash_mode {
            HashMode::Modulo => group.walk_from((key % group.nodes.len() as u64) as usize),
            HashMode::Rendezvous => group.live().max_by_key(|&(id, _)| rendezvous_score(key, id)),
        }
    }

    /// Sets how a group picks the node for a hash key; false for a bad group.
    pub fn set_hash_mode(&mut self, group: u32, mode: HashMode) -> bool {
        if !service_id::is_valid_group(i64::from(group)) {
            return false;
        }
        self.groups[group as usize].hash_mode = mode;
        true
    }

    /// A random live node.
    pub fn random(&mut self, group: u32) -> Option<Node> {
        let count = self.group(group)?.nodes.len();
        if count == 0 {
            return None;
        }
        let pick = (self.next_random() % count as u64) as usize;
        self.groups[group as usize].walk_from(pick)
    }

    /// Every live stream of a group, once each (a stream may hold several
    /// ids: it gets the first of them, in id order).
    pub fn broadcast(&self, group: u32) -> Vec<Node> {
        let mut nodes: Vec<Node> = self.group(group).into_iter().flat_map(Group::live).collect();
        // Per forwarded message: no set to allocate and hash into. Ordered by
        // token then id, a stream's first id leads its copies; back in id order.
        nodes.sort_unstable_by_key(|&(id, token)| (token, id));
        nodes.dedup_by_key(|node| node.1);
        nodes.sort_unstable_by_key(|&(id, _)| id);
        nodes
    }

    /// The nodes of a group in order.
    pub fn nodes(&self, group: u32) -> &[Node] {
        self.group(group).map_or(&[], |g| g.nodes.as_slice())
    }

    // xorshift64*: cheap, and good enough to spread load. Its low bits are
    // weak, so callers get the high half.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng_state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32
    }
}

/// The documented hash of a string key: 64-bit FNV-1a over its bytes.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hash of an integer key: its two's-complement bits.
pub fn hash_integer(key: i64) -> u64 {
    key as u64
}

#[cfg(test)]
mod tests {
    use super::service_id::make;
    use super::*;

    #[test]
    fn nodes_sorted_whatever_the_order() {
        let mut a = RouteTable::new();
        let mut b = RouteTable::new();
        for i in [3, 1, 2] {
            a.set(make(2, i), Some(100 + u64::from(i)));
        }
        for i in [1, 2, 3] {
            b.set(make(2, i), Some(100 + u64::from(i)));
        }
        for key in 0..50 {
            assert_eq!(a.hash(2, key), b.hash(2, key));
        }
        assert_eq!(a.hash(2, 0), Some((make(2, 1), 101)));
        assert_eq!(a.hash(2, 4), Some((make(2, 2), 102)));
    }

    #[test]
    fn zero_slots_walk_forward() {
        let mut t = RouteTable::new();
        t.set(make(2, 1), Some(11));
        t.set(make(2, 2), Some(0));
        t.set(make(2, 3), Some(13));
        assert_eq!(t.hash(2, 1), Some((make(2, 3), 13)));
        assert_eq!(t.hash(2, 2), Some((make(2, 3), 13)));
        t.set(make(2, 3), Some(0));
        assert_eq!(t.hash(2, 2), Some((make(2, 1), 11)));
        t.set(make(2, 1), Some(0));
        assert_eq!(t.hash(2, 2), None);
        assert_eq!(t.random(2), None);
        assert!(t.broadcast(2).is_empty());
    }

    #[test]
    fn removing_respreads() {
        let mut t = RouteTable::new();
        for i in 1..=3 {
            t.set(make(2, i), Some(u64::from(i)));
        }
        assert_eq!(t.hash(2, 5).map(|n| n.1), Some(3));
        t.set(make(2, 3), None);
        assert_eq!(t.hash(2, 5).map(|n| n.1), Some(2));
    }

    #[test]
    fn master_default_and_explicit() {
        let mut t = RouteTable::new();
        assert_eq!(t.master(4), None);
        t.set(make(4, 2), Some(22));
        t.set(make(4, 1), Some(0));
        assert_eq!(t.master(4), Some((make(4, 2), 22)));
        t.set(make(4, 1), Some(21));
        assert_eq!(t.master(4), Some((make(4, 1), 21)));
        t.set_master(4, 22);
        assert_eq!(t.master(4), Some((make(4, 2), 22)));
        // Removing the explicit master falls back to the first live node.
        t.set(make(4, 2), None);
        assert_eq!(t.master(4), Some((make(4, 1), 21)));
        t.set_master(4, 21);
        t.set_master(4, 0);
        assert_eq!(t.master(4), Some((make(4, 1), 21)));
    }

    #[test]
    fn target_lookup() {
        let mut t = RouteTable::new();
        t.set(make(3, 7), Some(5));
        t.set(make(3, 8), Some(0));
        assert_eq!(t.target(make(3, 7)), Some((make(3, 7), 5)));
        assert_eq!(t.target(make(3, 8)), None);
        assert_eq!(t.target(make(3, 9)), None);
        assert_eq!(t.nodes(3), &[(make(3, 7), 5), (make(3, 8), 0)]);
    }

    #[test]
    fn ids_per_stream_are_capped_and_counted() {
        let mut t = RouteTable::new();
        assert_eq!(t.set_limited(make(2, 1), Some(7), 2), Ok(()));
        assert_eq!(t.set_limited(make(2, 2), Some(7), 2), Ok(()));
        assert_eq!(t.set_limited(make(2, 3), Some(7), 2), Err(RouteError::TooManyIds));
        // Re-registering an id it holds is no new id.
        assert_eq!(t.set_limited(make(2, 2), Some(7), 2), Ok(()));
        assert_eq!(t.ids_of(7), 2);
        t.set(make(2, 1), Some(0));
        assert_eq!(t.ids_of(7), 1);
        assert_eq!(t.set_limited(make(2, 3), Some(7), 2), Ok(()));
        t.set(make(2, 2), None);
        t.set(make(2, 3), Some(8));
        assert_eq!((t.ids_of(7), t.ids_of(8)), (0, 1));
        assert_eq!(t.set_limited(0, Some(7), 2), Err(RouteError::InvalidId));
    }

    #[test]
    fn rendezvous_moves_about_one_key_in_n_and_only_the_changed_nodes_keys() {
        let keys = 20_000u64;
        let owners = |t: &RouteTable| -> Vec<u32> {
            (0..keys)
                .map(|k| t.hash(7, hash_integer(k as i64 * 7919)).unwrap().0)
                .collect()
        };
        let mut table = RouteTable::new();
        table.set_hash_mode(7, HashMode::Rendezvous);
        for i in 1..=3 {
            table.set(make(7, i), Some(u64::from(i)));
        }
        let before = owners(&table);
        // Every node gets a fair share.
        for i in 1..=3 {
            let share = before.iter().filter(|&&id| id == make(7, i)).count() as f64 / keys as f64;
            assert!((0.28..0.39).contains(&share), "node {i} has {share}");
        }
        table.set(make(7, 4), Some(4));
        let after = owners(&table);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / keys as f64;
        assert!(
            (0.20..0.30).contains(&moved),
            "adding a 4th node moved {moved} of the keys (want ~1/4)"
        );
        assert!(
            before.iter().zip(&after).all(|(a, b)| a == b || *b == make(7, 4)),
            "keys only move to the new node"
        );
        // Removing one of 4 moves only its own keys.
        table.set(make(7, 2), None);
        let removed = owners(&table);
        assert!(after.iter().zip(&removed).all(|(a, b)| a == b || *a == make(7, 2)));
        // Modulo, for comparison, moves about 3/4.
        let mut modulo = RouteTable::new();
        for i in 1..=3 {
            modulo.set(make(7, i), Some(u64::from(i)));
        }
        let m_before = owners(&modulo);
        modulo.set(make(7, 4), Some(4));
        let m_moved = m_before.iter().zip(owners(&modulo)).filter(|(a, b)| **a != *b).count() as f64 / keys as f64;
        assert!(m_moved > 0.6, "{m_moved}");
    }

    #[test]
    fn rendezvous_is_the_same_on_every_router_and_skips_kept_slots() {
        let mut a = RouteTable::new();
        let mut b = RouteTable::new();
        for t in [&mut a, &mut b] {
            t.set_hash_mode(3, HashMode::Rendezvous);
        }
        for i in [5, 1, 9, 3] {
            a.set(make(3, i), Some(u64::from(i)));
        }
        for i in [1, 3, 5, 9] {
            b.set(make(3, i), Some(100 + u64::from(i)));
        }
        for key in 0..500 {
            assert_eq!(a.hash(3, key).map(|n| n.0), b.hash(3, key).map(|n| n.0));
        }
        a.set(make(3, 5), Some(0)); // kept slot: never picked
        assert!((0..500).all(|key| a.hash(3, key).map(|n| n.0) != Some(make(3, 5))));
        assert_eq!(HashMode::from_name("rendezvous"), Some(HashMode::Rendezvous));
        assert!(!a.set_hash_mode(0, HashMode::Modulo));
        // The documented score (docs/protocol.md section 5).
        assert_eq!(rendezvous_score(0, 0x0003_0001), mix64(mix64(0x0003_0001)));
    }

    #[test]
    fn invalid_ids_rejected() {
        let mut t = RouteTable::new();
        assert!(!t.set(0, Some(1)));
        assert!(!t.set(make(1, 0), Some(1)));
        assert!(!t.set(256 << 16 | 1, Some(1)));
        assert!(!t.set_master(0, 1));
        assert!(!t.set_master(256, 1));
    }

    #[test]
    fn random_and_broadcast_cover_all() {
        let mut t = RouteTable::new();
        for i in 1..=4 {
            t.set(make(5, i), Some(u64::from(i)));
        }
        let mut seen = [0u32; 5];
        for _ in 0..400 {
            seen[t.random(5).unwrap().1 as usize] += 1;
        }
        assert!(seen[1..].iter().all(|&n| n > 50), "uneven spread {seen:?}");
        // Two nodes: no long streaks (the low bit of xorshift alternates).
        let mut pair = RouteTable::new();
        pair.set(make(6, 1), Some(1));
        pair.set(make(6, 2), Some(2));
        let picks: Vec<u64> = (0..64).map(|_| pair.random(6).unwrap().1).collect();
        assert!(
            picks.windows(2).any(|w| w[0] == w[1]),
            "strictly alternating picks {picks:?}"
        );
        assert!(picks.iter().filter(|&&p| p == 1).count() > 16, "{picks:?}");
        let tokens = |t: &RouteTable| t.broadcast(5).iter().map(|n| n.1).collect::<Vec<_>>();
        assert_eq!(tokens(&t), vec![1, 2, 3, 4]);
        // A stream holding two ids of the group gets one copy.
        t.set(make(5, 9), Some(2));
        assert_eq!(tokens(&t), vec![1, 2, 3, 4]);
        // ... at the first of its ids, in id order, whatever the tokens' order.
        let mut u = RouteTable::new();
        for (index, token) in [(1, 30), (2, 10), (3, 30), (4, 20), (5, 10), (6, 0)] {
            u.set(make(5, index), Some(token));
        }
        let nodes = u.broadcast(5);
        assert_eq!(nodes, vec![(make(5, 1), 30), (make(5, 2), 10), (make(5, 4), 20)]);
    }

    #[test]
    fn documented_hashes() {
        // FNV-1a 64 reference values.
        assert_eq!(hash_bytes(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash_bytes(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash_integer(-1), u64::MAX);
    }
}
