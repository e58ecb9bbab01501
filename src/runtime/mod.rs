//! The pieces of the event loop that know nothing of Lua: timers, signals,
//! the file watcher.

pub mod signals;
pub mod timers;
pub mod watcher;
