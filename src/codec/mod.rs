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

pub use decode::{DecodeError, MAX_BYTES_PER_INPUT_BYTE, MAX_FIXED_BYTES, PREALLOCATE_MAX, decode_args, decode_values};
pub use encode::{encode_args, encode_values};

/// Lends the bytes of the string at `index` to `f`, which alone holds the
/// borrow (so it cannot outlive the string's time on the stack).
///
/// # Safety
/// The stack contract of `lua::raw`, with a string (not a number, which
/// `lua_tolstring` would convert in place) at `index`; `f` does not remove it.
#[inline(always)]
unsafe fn with_string<R>(state: *mut mlua::ffi::lua_State, index: std::ffi::c_int, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut len = 0usize;
    // SAFETY: a string at `index` (the caller's promise): lua_tolstring
    // returns its `len` bytes, which stay put while it is on the stack.
    let bytes = unsafe {
        let ptr = mlua::ffi::lua_tolstring(state, index, &mut len);
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    };
    f(bytes)
}

/// Deepest table nesting a message may have (the outermost argument table is level 1).
pub const MAX_DEPTH: usize = 32;

#[cfg(test)]
mod tests;
