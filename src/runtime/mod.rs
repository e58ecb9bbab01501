//! The pieces of the event loop that know nothing of Lua: timers, signals,
//! the file watcher, waiting on the poller.

pub mod poller;
pub mod signals;
pub mod timers;
pub mod watcher;
