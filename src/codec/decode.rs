//! MessagePack onto the Lua stack.

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

struct Decoder<'a> {
    state: *mut lua_State,
    data: &'a [u8],
    pos: usize,
}

/// Pushes the arguments of one message (a MessagePack array) and returns
/// how many were pushed. On error the stack is as it was.
///
/// # Safety
/// `state` must be a valid Lua state.
pub unsafe fn decode_args(state: *mut lua_State, data: &[u8]) -> Result<c_int, DecodeError> {
    let top = unsafe { ffi::lua_gettop(state) };
    let mut decoder = Decoder { state, data, pos: 0 };
    let result = unsafe { decoder.arguments() };
    if result.is_err() {
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

    unsafe fn arguments(&mut self) -> Result<c_int, DecodeError> {
        let marker = Marker::from_u8(self.u8()?);
        let count = match marker {
            Marker::FixArray(n) => u32::from(n),
            Marker::Array16 => u32::from(self.u16()?),
            Marker::Array32 => self.u32()?,
            _ => return self.fail("message is not an array of arguments"),
        };
        if count > MAX_ARGUMENTS {
            return self.fail("too many arguments");
        }
        if count as usize > self.remaining() {
            return self.fail("truncated message");
        }
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

    unsafe fn value(&mut self, depth: usize) -> Result<(), DecodeError> {
        let state = self.state;
        let marker = Marker::from_u8(self.u8()?);
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

    unsafe fn string(&mut self, len: usize) -> Result<(), DecodeError> {
        let state = self.state;
        let bytes = self.take(len)?;
        unsafe { ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len()) };
        Ok(())
    }

    fn enter(&self, depth: usize, entries: u32, bytes_per_entry: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return self.fail("tables nested too deep");
        }
        // Every entry takes at least one byte: reject lengths the data cannot hold before allocating.
        if (entries as usize).saturating_mul(bytes_per_entry) > self.remaining() {
            return self.fail("truncated message");
        }
        if unsafe { ffi::lua_checkstack(self.state, 4) } == 0 {
            return self.fail("tables nested too deep");
        }
        Ok(())
    }

    unsafe fn table_array(&mut self, len: u32, depth: usize) -> Result<(), DecodeError> {
        self.enter(depth, len, 1)?;
        let state = self.state;
        unsafe {
            ffi::lua_createtable(state, len.min(i32::MAX as u32) as c_int, 0);
            for at in 1..=i64::from(len) {
                self.value(depth)?;
                ffi::lua_rawseti(state, -2, at);
            }
        }
        Ok(())
    }

    unsafe fn table_map(&mut self, len: u32, depth: usize) -> Result<(), DecodeError> {
        self.enter(depth, len, 2)?;
        let state = self.state;
        unsafe {
            ffi::lua_createtable(state, 0, len.min(i32::MAX as u32) as c_int);
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
