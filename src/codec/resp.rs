//! Redis RESP2 commands from the Lua stack and replies onto it. The bytes
//! are parsed and written by the `redis-protocol` crate.

use std::ffi::{CStr, c_int};

use mlua::ffi::{self, lua_State};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, RangeFrame};

/// Deepest reply nesting pushed onto the stack.
const MAX_REPLY_DEPTH: usize = 32;

/// Writes the stack values `first..=last` as one command (an array of bulk
/// strings). Strings go as they are, numbers as their decimal text.
///
/// # Safety
/// `state` must be a valid Lua state with `first..=last` valid stack indices.
pub unsafe fn encode_command(
    state: *mut lua_State,
    first: c_int,
    last: c_int,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut texts: Vec<Vec<u8>> = Vec::new();
    let mut parts: Vec<(usize, Option<usize>)> = Vec::new(); // (argument, index into texts)
    for index in first..=last {
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => parts.push((index as usize, None)),
                ffi::LUA_TNUMBER => {
                    let text = if ffi::lua_isinteger(state, index) != 0 {
                        ffi::lua_tointegerx(state, index, std::ptr::null_mut()).to_string()
                    } else {
                        format!("{}", ffi::lua_tonumberx(state, index, std::ptr::null_mut()))
                    };
                    texts.push(text.into_bytes());
                    parts.push((index as usize, Some(texts.len() - 1)));
                }
                other => {
                    let name = CStr::from_ptr(ffi::lua_typename(state, other)).to_string_lossy();
                    return Err(format!(
                        "cannot send a {name} as a redis argument (argument #{index}: strings and numbers only)"
                    ));
                }
            }
        }
    }
    let frames: Vec<BorrowedFrame> = parts
        .iter()
        .map(|&(index, text)| match text {
            Some(at) => BorrowedFrame::BulkString(&texts[at]),
            None => unsafe {
                let mut len = 0usize;
                let ptr = ffi::lua_tolstring(state, index as c_int, &mut len);
                BorrowedFrame::BulkString(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
            },
        })
        .collect();
    let command = BorrowedFrame::Array(&frames);
    let start = out.len();
    out.resize(start + command.encode_len(false), 0);
    encode_borrowed(&mut out[start..], &command, false).map_err(|e| e.to_string())?;
    Ok(())
}

/// The result of looking for one reply in `buf`.
pub enum Reply {
    /// A complete reply of this many bytes, pushed as `value, err`.
    Pushed(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Parses the first reply in `buf` and pushes it as two values: the value
/// (nil for a null or an error) and the error message (nil unless the reply
/// is an error). Arrays become tables with `n` set to their length.
///
/// # Safety
/// `state` must be a valid Lua state.
pub unsafe fn push_reply(state: *mut lua_State, buf: &[u8]) -> Result<Reply, String> {
    let Some((frame, len)) = decode_range(buf).map_err(|e| e.to_string())? else {
        return Ok(Reply::Incomplete);
    };
    unsafe {
        if ffi::lua_checkstack(state, 4) == 0 {
            return Err("stack overflow".into());
        }
        match &frame {
            RangeFrame::Error((start, end)) => {
                ffi::lua_pushnil(state);
                push_bytes(state, &buf[*start..*end]);
            }
            _ => {
                push_frame(state, buf, &frame, 0)?;
                ffi::lua_pushnil(state);
            }
        }
    }
    Ok(Reply::Pushed(len))
}

unsafe fn push_bytes(state: *mut lua_State, bytes: &[u8]) {
    unsafe { ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len()) };
}

unsafe fn push_frame(state: *mut lua_State, buf: &[u8], frame: &RangeFrame, depth: usize) -> Result<(), String> {
    unsafe {
        match frame {
            RangeFrame::SimpleString((start, end)) | RangeFrame::BulkString((start, end)) => {
                push_bytes(state, &buf[*start..*end])
            }
            RangeFrame::Integer(value) => ffi::lua_pushinteger(state, *value),
            RangeFrame::Null => ffi::lua_pushnil(state),
            RangeFrame::Error((start, end)) => {
                // An error inside an array (EXEC): { err = message }.
                ffi::lua_createtable(state, 0, 1);
                push_bytes(state, &buf[*start..*end]);
                ffi::lua_setfield(state, -2, c"err".as_ptr());
            }
            RangeFrame::Array(items) => {
                if depth >= MAX_REPLY_DEPTH || ffi::lua_checkstack(state, 4) == 0 {
                    return Err("reply nested too deep".into());
                }
                ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as c_int, 1);
                for (at, item) in items.iter().enumerate() {
                    push_frame(state, buf, item, depth + 1)?;
                    ffi::lua_rawseti(state, -2, at as i64 + 1);
                }
                ffi::lua_pushinteger(state, items.len() as i64);
                ffi::lua_setfield(state, -2, c"n".as_ptr());
            }
        }
    }
    Ok(())
}
