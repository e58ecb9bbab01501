//! A timer heap: one-shot and repeating deadlines with cancellable ids.
//!
//! Cancelled or rescheduled timers leave stale heap entries behind; they are
//! skipped when they reach the top, which keeps every operation O(log n).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Identifies one timer; never reused within a process.
pub type TimerId = u64;

struct Entry<T> {
    deadline: Instant,
    period: Option<Duration>,
    payload: T,
}

/// Deadlines ordered by time, each carrying a payload that says what to do.
pub struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, TimerId)>>,
    entries: HashMap<TimerId, Entry<T>>,
    next_id: TimerId,
}

impl<T: Clone> Default for Timers<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Timers<T> {
    /// An empty heap.
    pub fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            entries: HashMap::new(),
            next_id: 1,
        }
    }

    /// Schedules `payload` at `deadline`, then every `period` if given.
    pub fn add_at(&mut self, deadline: Instant, period: Option<Duration>, payload: T) -> TimerId {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                deadline,
                period,
                payload,
            },
        );
        self.heap.push(Reverse((deadline, id)));
        id
    }

    /// Moves a live timer to a new deadline; false if it no longer exists.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        match self.entries.get_mut(&id) {
            Some(entry) => {
                entry.deadline = deadline;
                self.heap.push(Reverse((deadline, id)));
                true
            }
            None => false,
        }
    }

    /// Removes a timer; returns its payload if it was still pending.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let payload = self.entries.remove(&id).map(|entry| entry.payload);
        // Cancelled entries stay in the heap until they reach the top; when
        // they outnumber the live ones (many short calls with long timeouts),
        // rebuild the heap so memory follows the live timers.
        if self.heap.len() > 2 * self.entries.len() + 64 {
            self.heap = self
                .entries
                .iter()
                .map(|(&id, entry)| Reverse((entry.deadline, id)))
                .collect();
        }
        payload
    }

    /// True while the timer is scheduled.
    pub fn contains(&self, id: TimerId) -> bool {
        self.entries.contains_key(&id)
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Takes the next timer due at `now`; a repeating one is re-armed first.
    pub fn pop_due(&mut self, now: Instant) -> Option<(TimerId, T)> {
        self.drop_stale_top();
        let Reverse((deadline, id)) = *self.heap.peek()?;
        if deadline > now {
            return None;
        }
        self.heap.pop();
        let entry = self.entries.get_mut(&id)?;
        match entry.period {
            Some(period) => {
                // Keep the cadence, but never queue a burst of catch-up runs.
                let mut next = deadline + period;
                if next <= now {
                    next = now + period;
                }
                entry.deadline = next;
                self.heap.push(Reverse((next, id)));
                Some((id, entry.payload.clone()))
            }
            None => self.entries.remove(&id).map(|entry| (id, entry.payload)),
        }
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every live timer: (id, deadline, period), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (TimerId, Instant, Option<Duration>)> + '_ {
        self.entries
            .iter()
            .map(|(&id, entry)| (id, entry.deadline, entry.period))
    }

    /// True when no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse((deadline, id))) = self.heap.peek() {
            match self.entries.get(id) {
                Some(entry) if entry.deadline == *deadline => return,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order() {
        let start = Instant::now();
        let mut timers = Timers::new();
        timers.add_at(start + Duration::from_millis(20), None, "b");
        timers.add_at(start + Duration::from_millis(10), None, "a");
        let later = start + Duration::from_millis(30);
        assert_eq!(timers.pop_due(later).map(|t| t.1), Some("a"));
        assert_eq!(timers.pop_due(later).map(|t| t.1), Some("b"));
        assert!(timers.pop_due(later).is_none());
        assert!(timers.is_empty());
    }

    #[test]
    fn not_due_yet() {
        let start = Instant::now();
        let mut timers = Timers::new();
        timers.add_at(start + Duration::from_secs(1), None, ());
        assert!(timers.pop_due(start).is_none());
        assert_eq!(timers.next_deadline(), Some(start + Duration::from_secs(1)));
    }

    #[test]
    fn cancel_and_reschedule() {
        let start = Instant::now();
        let mut timers = Timers::new();
        let a = timers.add_at(start, None, 1);
        let b = timers.add_at(start, None, 2);
        assert_eq!(timers.cancel(a), Some(1));
        assert_eq!(timers.cancel(a), None);
        assert!(timers.reschedule(b, start + Duration::from_secs(5)));
        assert!(timers.pop_due(start).is_none());
        assert_eq!(timers.next_deadline(), Some(start + Duration::from_secs(5)));
    }

    #[test]
    fn cancelled_timers_do_not_pile_up() {
        let start = Instant::now();
        let mut timers = Timers::new();
        let keep = timers.add_at(start + Duration::from_secs(9), None, 0);
        for i in 0..10_000 {
            let id = timers.add_at(start + Duration::from_secs(5), None, i);
            timers.cancel(id);
        }
        assert!(timers.heap.len() < 200, "heap kept {} stale entries", timers.heap.len());
        assert_eq!(timers.next_deadline(), Some(start + Duration::from_secs(9)));
        assert!(timers.contains(keep));
    }

    #[test]
    fn repeating_keeps_cadence_without_bursts() {
        let start = Instant::now();
        let period = Duration::from_millis(10);
        let mut timers = Timers::new();
        let id = timers.add_at(start + period, Some(period), ());
        assert!(timers.pop_due(start + period).is_some());
        assert_eq!(timers.next_deadline(), Some(start + period * 2));
        // Far behind: one run, then the next one a full period later.
        let late = start + period * 10;
        assert!(timers.pop_due(late).is_some());
        assert!(timers.pop_due(late).is_none());
        assert_eq!(timers.next_deadline(), Some(late + period));
        assert!(timers.contains(id));
    }
}
