//! luna: a single binary that hosts Lua service processes and ties them
//! into a cluster.
//!
//! Layout: `runtime` (timers, signals, file watcher), `net` (sockets,
//! framing, forwarding), `route` (route tables), `codec` (MessagePack on the
//! Lua stack), `lua` (the `luna` module and the loop's callbacks), `cli`.

pub mod cli;
pub mod codec;
pub mod log;
pub mod lua;
pub mod net;
pub mod pid_file;
pub mod route;
pub mod rpc;
pub mod runtime;
