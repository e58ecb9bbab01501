//! Host name resolution off the event loop, on a small pool of threads.
//!
//! `getaddrinfo` blocks, so lookups run on helper threads that wake the
//! poller when they finish. The pool is bounded (threads start as needed, up
//! to [`MAX_WORKERS`]) and so is the queue: a script that connects to
//! thousands of unresolvable names cannot make the process start thousands
//! of threads; past [`MAX_QUEUED`] waiting lookups a connect fails with
//! `addr-error` at once.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::log;
use crate::runtime::poller::Poller;

/// Most lookup threads at once.
pub const MAX_WORKERS: usize = 4;
/// Most lookups waiting for a thread.
pub const MAX_QUEUED: usize = 1024;

/// The outcome of one lookup: the token that asked and the addresses found.
pub type Resolved = (u64, std::io::Result<Vec<SocketAddr>>);

struct Lookup {
    token: u64,
    host: String,
    port: u16,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Lookup>,
    /// Threads started so far.
    workers: usize,
    /// Threads waiting for work now.
    idle: usize,
    /// The resolver is gone: threads finish.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
}

/// Runs lookups on helper threads and wakes the poller when one finishes.
pub struct Resolver {
    poller: Arc<Poller>,
    shared: Arc<Shared>,
    sender: Sender<Resolved>,
    receiver: Receiver<Resolved>,
}

impl Resolver {
    /// A resolver that wakes `poller` with results.
    pub fn new(poller: Arc<Poller>) -> Self {
        let (sender, receiver) = channel();
        Resolver {
            poller,
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                work: Condvar::new(),
            }),
            sender,
            receiver,
        }
    }

    /// Queues a lookup of `host:port` for `token`; the answer arrives through
    /// [`Resolver::try_next`]. False when too many lookups are waiting.
    pub fn resolve(&self, token: u64, host: String, port: u16) -> bool {
        let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.waiting.len() >= MAX_QUEUED {
            return false;
        }
        queue.waiting.push_back(Lookup { token, host, port });
        if queue.idle == 0 && queue.workers < MAX_WORKERS && self.start_worker() {
            queue.workers += 1;
        }
        drop(queue);
        self.shared.work.notify_one();
        true
    }

    fn start_worker(&self) -> bool {
        let shared = Arc::clone(&self.shared);
        let sender = self.sender.clone();
        let poller = Arc::clone(&self.poller);
        let started = std::thread::Builder::new()
            .name("luna-dns".into())
            .spawn(move || work(&shared, &sender, &poller));
        match started {
            Ok(_) => true,
            Err(error) => {
                // The lookups wait for a thread started later (or time out their connect).
                log::warn(&format!("cannot start a name lookup thread: {error}"));
                false
            }
        }
    }

    /// A finished lookup, if any.
    pub fn try_next(&self) -> Option<Resolved> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.closed = true;
        queue.waiting.clear();
        drop(queue);
        self.shared.work.notify_all();
    }
}

/// A worker: resolves queued lookups until the resolver is dropped.
fn work(shared: &Shared, sender: &Sender<Resolved>, poller: &Poller) {
    loop {
        let lookup = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(lookup) = queue.waiting.pop_front() {
                    break lookup;
                }
                if queue.closed {
                    return;
                }
                queue.idle += 1;
                queue = shared.work.wait(queue).unwrap_or_else(PoisonError::into_inner);
                queue.idle -= 1;
            }
        };
        let result = (lookup.host.as_str(), lookup.port)
            .to_socket_addrs()
            .map(Iterator::collect);
        if sender.send((lookup.token, result)).is_err() {
            return; // the resolver is gone
        }
        let _ = poller.notify();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn wait_for(resolver: &Resolver, count: usize) -> Vec<Resolved> {
        let mut results = Vec::new();
        let end = Instant::now() + Duration::from_secs(20);
        while results.len() < count && Instant::now() < end {
            match resolver.try_next() {
                Some(result) => results.push(result),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        results
    }

    #[test]
    fn lookups_run_on_a_bounded_pool_and_all_answer() {
        let resolver = Resolver::new(Arc::new(Poller::new().unwrap()));
        for token in 0..40 {
            assert!(resolver.resolve(token, "localhost".into(), 80));
        }
        assert!(resolver.shared.queue.lock().unwrap().workers <= MAX_WORKERS);
        let mut results = wait_for(&resolver, 40);
        results.sort_by_key(|(token, _)| *token);
        assert_eq!(results.len(), 40);
        assert!(
            results
                .iter()
                .all(|(_, addrs)| addrs.as_ref().is_ok_and(|a| !a.is_empty()))
        );
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let resolver = Resolver::new(Arc::new(Poller::new().unwrap()));
        // Fill the queue without workers picking anything up.
        resolver.shared.queue.lock().unwrap().workers = MAX_WORKERS;
        for token in 0..MAX_QUEUED as u64 {
            assert!(resolver.resolve(token, "localhost".into(), 80));
        }
        assert!(!resolver.resolve(9999, "localhost".into(), 80));
    }
}
