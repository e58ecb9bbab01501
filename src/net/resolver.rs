//! Host name resolution off the event loop: one short-lived thread per lookup.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use polling::Poller;

/// The outcome of one lookup: the token that asked and the addresses found.
pub type Resolved = (u64, std::io::Result<Vec<SocketAddr>>);

/// Runs lookups on helper threads and wakes the poller when one finishes.
pub struct Resolver {
    poller: Arc<Poller>,
    sender: Sender<Resolved>,
    receiver: Receiver<Resolved>,
}

impl Resolver {
    /// A resolver that wakes `poller` with results.
    pub fn new(poller: Arc<Poller>) -> Self {
        let (sender, receiver) = channel();
        Resolver {
            poller,
            sender,
            receiver,
        }
    }

    /// Starts resolving `host:port` for `token`; the answer arrives through [`Resolver::try_next`].
    pub fn resolve(&self, token: u64, host: String, port: u16) {
        let sender = self.sender.clone();
        let poller = Arc::clone(&self.poller);
        let spawned = std::thread::Builder::new().name("luna-dns".into()).spawn(move || {
            let result = (host.as_str(), port).to_socket_addrs().map(Iterator::collect);
            let _ = sender.send((token, result));
            let _ = poller.notify();
        });
        if let Err(error) = spawned {
            let _ = self.sender.send((token, Err(error)));
        }
    }

    /// A finished lookup, if any.
    pub fn try_next(&self) -> Option<Resolved> {
        self.receiver.try_recv().ok()
    }
}
