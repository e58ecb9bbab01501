//! MessagePack messages straight from and onto the Lua stack.
//!
//! A message is the list of a call's arguments, written as one MessagePack
//! array. Values are written from the Lua stack into the output buffer and
//! read from the input buffer onto the Lua stack, with no tree in between.
//! This is the one module where the codec touches Lua. `resp` does the
//! same for Redis commands and replies.

pub mod checks;
mod decode;
mod encode;
pub mod resp;

pub use decode::{DecodeError, MAX_BYTES_PER_INPUT_BYTE, MAX_FIXED_BYTES, PREALLOCATE_MAX, decode_args};
pub use encode::encode_args;

/// Deepest table nesting a message may have (the outermost argument table is level 1).
pub const MAX_DEPTH: usize = 32;

#[cfg(test)]
mod tests;
