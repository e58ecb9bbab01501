//! MessagePack onto the Lua stack.
//!
//! # Memory bound
//!
//! Decoding never reserves room the input cannot justify, so the memory a
//! message makes the Lua allocator hand out is at most
//! [`MAX_BYTES_PER_INPUT_BYTE`] times the payload size, plus
//! [`MAX_FIXED_BYTES`], whatever its shape:
//!
//! - Every element takes at least one byte, so the elements announced by
//!   the open arrays and maps and not yet started (two per map entry) can
//!   never outnumber the bytes left. The decoder keeps that sum (`claimed`,
//!   one add and one compare per table, one subtract per value) and rejects
//!   the message as `truncated message` the moment it would. Nested headers
//!   that each claim the rest of the message fail at the second one.
//! - A table is created with room for at most [`PREALLOCATE_MAX`] elements;
//!   a longer one grows as its elements are set (Lua doubles it), so what a
//!   message announces costs nothing until its bytes have been read.
//!
//! The worst shapes are containers of empty tables (`[[], [], ...]`): each
//! one-byte element is a 56-byte Lua table plus its slot in the parent.
//! `tests::memory_factor_of_every_shape` measures the peak of each shape by
//! bisecting the Lua allocator's limit (the allocator's count: malloc's own
//! overhead, about 8-16 bytes per object, comes on top); the fuzz target
//! `msgpack_decode` and the corpus test check the bound on every input.

use std::ffi::c_int;
use std::fmt;

use mlua::ffi::{self, lua_State};
use rmp::Marker;

use super::MAX_DEPTH;

/// Why bytes are not a message; the stream API reports it as `bad-package`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub reason: &'static str,
    /// Byte offset in the payload where it was found.
    pub offset: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

/// Most values one message may push as arguments.
const MAX_ARGUMENTS: u32 = 8000;

/// Most elements a table is created with room for. Up to this size a table
/// is sized exactly in one allocation (the common case: W7's 1,000-record
/// message); a longer one grows by doubling, O(1) amortized per element.
/// 1,024 slots are at most 16 KiB (array) or 24 KiB (map) per table.
pub const PREALLOCATE_MAX: u32 = 1024;

/// Bound on the Lua memory a message can make the decoder allocate, per
/// byte of payload (see the module documentation). Measured worst case: 92,
/// a map of 1,025 pairs of empty arrays (two 56-byte tables per two bytes;
/// growing past 1,024 entries, Lua holds the old 1,024 nodes of 24 bytes
/// and the new 2,048 at once). An array of empty tables is 72 to 88,
/// strings about 1 per byte when long and 16 when two bytes each, integers
/// and floats 2 to 32.
pub const MAX_BYTES_PER_INPUT_BYTE: usize = 128;

/// Lua memory a message may take beyond the per-byte bound: the growth of
/// the Lua stack for its arguments and nesting, which stays for later
/// messages.
pub const MAX_FIXED_BYTES: usize = 4096;

/// Pushes MessagePack values onto the Lua stack.
///
/// Invariant: only `decode_with` builds one (for `decode_args` and `decode_values`), and only for the length of its
/// call, so `state` keeps the stack contract of `lua::raw` for as long as a
/// decoder lives (what makes the safe `enter` sound).
struct Decoder<'a> {
    state: *mut lua_State,
    data: &'a [u8],
    pos: usize,
    /// Elements announced by the open arrays and maps (two per map entry)
    /// and not started yet; each needs at least one of the bytes left.
    claimed: usize,
}

/// Pushes the arguments of one message (a MessagePack array) and returns
/// how many were pushed. On error the stack is as it was.
///
/// # Safety
/// The stack contract of `lua::raw` (a live state of this thread in a
/// protected call, no host borrow). The decoder checks the stack for room
/// itself.
pub unsafe fn decode_args(state: *mut lua_State, data: &[u8]) -> Result<c_int, DecodeError> {
    // SAFETY: the caller's contract, which the decoder's methods share.
    unsafe { decode_with(state, data, |decoder| decoder.arguments()) }
}

/// Pushes the `count` values that `data` holds one after the other (the
/// elements of a message after a head the caller has read) and returns how
/// many were pushed. On error the stack is as it was.
///
/// # Safety
/// As [`decode_args`].
pub unsafe fn decode_values(state: *mut lua_State, data: &[u8], count: u32) -> Result<c_int, DecodeError> {
    // SAFETY: the caller's contract, which the decoder's methods share.
    unsafe { decode_with(state, data, |decoder| decoder.values(count)) }
}

/// Runs `decode` on a decoder of `data`; on error, the stack is put back.
///
/// # Safety
/// As [`decode_args`].
unsafe fn decode_with(
    state: *mut lua_State,
    data: &[u8],
    decode: impl FnOnce(&mut Decoder) -> Result<c_int, DecodeError>,
) -> Result<c_int, DecodeError> {
    // SAFETY: `state` is live (the caller's promise); lua_gettop only reads it.
    let top = unsafe { ffi::lua_gettop(state) };
    let mut decoder = Decoder {
        state,
        data,
        pos: 0,
        claimed: 0,
    };
    let result = decode(&mut decoder);
    if result.is_err() {
        // SAFETY: `top` was the top before anything was pushed.
        unsafe { ffi::lua_settop(state, top) };
    }
    result
}

impl Decoder<'_> {
    fn fail<T>(&self, reason: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            reason,
            offset: self.pos,
        })
    }

    fn take(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        if self.data.len() - self.pos < len {
            return self.fail("truncated message");
        }
        let bytes = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Pushes the message's arguments; returns how many.
    ///
    /// # Safety
    /// The stack contract of `lua::raw` on `self.state` (as [`decode_args`]).
    unsafe fn arguments(&mut self) -> Result<c_int, DecodeError> {
        let marker = Marker::from_u8(self.u8()?);
        let count = match marker {
            Marker::FixArray(n) => u32::from(n),
            Marker::Array16 => u32::from(self.u16()?),
            Marker::Array32 => self.u32()?,
            _ => return self.fail("message is not an array of arguments"),
        };
        // SAFETY: the caller's contract, passed on.
        unsafe { self.values(count) }
    }

    /// Pushes `count` values that fill the rest of the data.
    ///
    /// # Safety
    /// As [`Self::arguments`].
    unsafe fn values(&mut self, count: u32) -> Result<c_int, DecodeError> {
        if count > MAX_ARGUMENTS {
            return self.fail("too many arguments");
        }
        self.claim(count as usize)?;
        // SAFETY: the contract; room for every argument is made before the
        // first is pushed.
        unsafe {
            if ffi::lua_checkstack(self.state, count as c_int + 4) == 0 {
                return self.fail("too many arguments");
            }
            for _ in 0..count {
                self.value(0)?;
            }
        }
        if self.pos != self.data.len() {
            return self.fail("bytes left after the message");
        }
        Ok(count as c_int)
    }

    /// Records `elements` more announced elements; fails when the bytes
    /// left cannot hold every announced element not started yet.
    fn claim(&mut self, elements: usize) -> Result<(), DecodeError> {
        self.claimed += elements;
        if self.claimed > self.remaining() {
            return self.fail("truncated message");
        }
        Ok(())
    }

    /// Pushes one value (nested tables included).
    ///
    /// # Safety
    /// The stack contract of `lua::raw` on `self.state`, with room for one
    /// more value (tables make room for their own contents in `enter`).
    unsafe fn value(&mut self, depth: usize) -> Result<(), DecodeError> {
        let state = self.state;
        // Every call starts one element that `claim` counted.
        self.claimed -= 1;
        let marker = Marker::from_u8(self.u8()?);
        // SAFETY: the contract leaves room for the one value pushed here;
        // strings and tables are pushed by methods with the same contract.
        unsafe {
            match marker {
                Marker::FixPos(v) => ffi::lua_pushinteger(state, i64::from(v)),
                Marker::FixNeg(v) => ffi::lua_pushinteger(state, i64::from(v)),
                Marker::Null => ffi::lua_pushnil(state),
                Marker::True => ffi::lua_pushboolean(state, 1),
                Marker::False => ffi::lua_pushboolean(state, 0),
                Marker::U8 => ffi::lua_pushinteger(state, i64::from(self.u8()?)),
                Marker::U16 => ffi::lua_pushinteger(state, i64::from(self.u16()?)),
                Marker::U32 => ffi::lua_pushinteger(state, i64::from(self.u32()?)),
                // Above i64::MAX wraps, as a Lua integer literal of that size does.
                Marker::U64 => ffi::lua_pushinteger(state, self.u64()? as i64),
                Marker::I8 => ffi::lua_pushinteger(state, i64::from(self.u8()? as i8)),
                Marker::I16 => ffi::lua_pushinteger(state, i64::from(self.u16()? as i16)),
                Marker::I32 => ffi::lua_pushinteger(state, i64::from(self.u32()? as i32)),
                Marker::I64 => ffi::lua_pushinteger(state, self.u64()? as i64),
                Marker::F32 => ffi::lua_pushnumber(state, f64::from(f32::from_bits(self.u32()?))),
                Marker::F64 => ffi::lua_pushnumber(state, f64::from_bits(self.u64()?)),
                Marker::FixStr(n) => self.string(usize::from(n))?,
                Marker::Str8 | Marker::Bin8 => {
                    let len = self.u8()?;
                    self.string(usize::from(len))?
                }
                Marker::Str16 | Marker::Bin16 => {
                    let len = self.u16()?;
                    self.string(usize::from(len))?
                }
                Marker::Str32 | Marker::Bin32 => {
                    let len = self.u32()?;
                    self.string(len as usize)?
                }
                Marker::FixArray(n) => self.table_array(u32::from(n), depth + 1)?,
                Marker::Array16 => {
                    let n = self.u16()?;
                    self.table_array(u32::from(n), depth + 1)?
                }
                Marker::Array32 => {
                    let n = self.u32()?;
                    self.table_array(n, depth + 1)?
                }
                Marker::FixMap(n) => self.table_map(u32::from(n), depth + 1)?,
                Marker::Map16 => {
                    let n = self.u16()?;
                    self.table_map(u32::from(n), depth + 1)?
                }
                Marker::Map32 => {
                    let n = self.u32()?;
                    self.table_map(n, depth + 1)?
                }
                Marker::Reserved => return self.fail("reserved marker 0xc1"),
                _ => return self.fail("extension types are not supported"),
            }
        }
        Ok(())
    }

    /// Pushes the next `len` bytes as a string.
    ///
    /// # Safety
    /// As [`Self::value`].
    unsafe fn string(&mut self, len: usize) -> Result<(), DecodeError> {
        let state = self.state;
        // The elements still owed need bytes after the string's.
        if len.saturating_add(self.claimed) > self.remaining() {
            return self.fail("truncated message");
        }
        let bytes = self.take(len)?;
        // SAFETY: the contract leaves room for it; Lua copies the bytes.
        unsafe { ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len()) };
        Ok(())
    }

    fn enter(&mut self, depth: usize, entries: u32, elements_per_entry: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return self.fail("tables nested too deep");
        }
        // Reject lengths the data cannot hold before allocating anything.
        self.claim(entries as usize * elements_per_entry)?;
        // SAFETY: the decoder's invariant (a live state); lua_checkstack
        // only grows the stack.
        if unsafe { ffi::lua_checkstack(self.state, 4) } == 0 {
            return self.fail("tables nested too deep");
        }
        Ok(())
    }

    /// Pushes an array of `len` elements as a table.
    ///
    /// # Safety
    /// As [`Self::value`].
    unsafe fn table_array(&mut self, len: u32, depth: usize) -> Result<(), DecodeError> {
        self.enter(depth, len, 1)?;
        let state = self.state;
        // SAFETY: `enter` made room for the table and an element above it;
        // each element is popped into the table by lua_rawseti.
        unsafe {
            ffi::lua_createtable(state, len.min(PREALLOCATE_MAX) as c_int, 0);
            for at in 1..=i64::from(len) {
                self.value(depth)?;
                ffi::lua_rawseti(state, -2, at);
            }
        }
        Ok(())
    }

    /// Pushes a map of `len` entries as a table.
    ///
    /// # Safety
    /// As [`Self::value`].
    unsafe fn table_map(&mut self, len: u32, depth: usize) -> Result<(), DecodeError> {
        self.enter(depth, len, 2)?;
        let state = self.state;
        // SAFETY: `enter` made room for the table, a key and a value above
        // it; each pair is popped into the table by lua_rawset.
        unsafe {
            ffi::lua_createtable(state, 0, len.min(PREALLOCATE_MAX) as c_int);
            for _ in 0..len {
                let key_at = self.pos;
                self.value(depth)?;
                match ffi::lua_type(state, -1) {
                    ffi::LUA_TNIL => {
                        return Err(DecodeError {
                            reason: "nil map key",
                            offset: key_at,
                        });
                    }
                    ffi::LUA_TNUMBER
                        if ffi::lua_isinteger(state, -1) == 0
                            && ffi::lua_tonumberx(state, -1, std::ptr::null_mut()).is_nan() =>
                    {
                        return Err(DecodeError {
                            reason: "NaN map key",
                            offset: key_at,
                        });
                    }
                    _ => {}
                }
                self.value(depth)?;
                ffi::lua_rawset(state, -3);
            }
        }
        Ok(())
    }
}
