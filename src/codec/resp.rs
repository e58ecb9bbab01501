//! Redis RESP2 commands from the Lua stack and replies onto it.
//!
//! Replies come from a server, or from anyone on the path to it, so the
//! parser trusts nothing: it never recurses (open arrays are counted in a
//! fixed array of [`MAX_REPLY_DEPTH`] entries), checks the nesting while it
//! reads, rejects lengths that cannot fit in the package size before
//! reading on, and allocates nothing until the whole reply has arrived and
//! checked out. Only then is it read a second time, onto the Lua stack.

use std::ffi::{CStr, c_int};
use std::io::Write as _;

use mlua::ffi::{self, lua_State};

use super::with_string;

/// Deepest reply nesting accepted (arrays inside arrays).
pub const MAX_REPLY_DEPTH: usize = 32;

/// Fewest bytes one element of an array takes (`+\r\n`).
const MIN_ELEMENT_LEN: usize = 3;

/// Longest line of an integer or a length (`-9223372036854775808\r\n` is 22 bytes).
const MAX_NUMBER_LINE: usize = 24;

/// Writes the stack values `first..=last` as one command (an array of bulk
/// strings). Strings go as they are, numbers as their decimal text. On error
/// `out` is as it was.
///
/// # Safety
/// The stack contract of `lua::raw` (a live state of this thread in a
/// protected call, no host borrow), with `first..=last` valid stack indices.
pub unsafe fn encode_command(
    state: *mut lua_State,
    first: c_int,
    last: c_int,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let start = out.len();
    let _ = write!(out, "*{}\r\n", (last - first + 1).max(0));
    for index in first..=last {
        // SAFETY: `index` is valid (the caller's promise); each accessor
        // matches the type just checked (with_string gets a string), and a
        // string's bytes are copied while it is on the stack.
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => with_string(state, index, |bytes| {
                    let _ = write!(out, "${}\r\n", bytes.len());
                    out.extend_from_slice(bytes);
                }),
                ffi::LUA_TNUMBER => {
                    let text = if ffi::lua_isinteger(state, index) != 0 {
                        ffi::lua_tointegerx(state, index, std::ptr::null_mut()).to_string()
                    } else {
                        format!("{}", ffi::lua_tonumberx(state, index, std::ptr::null_mut()))
                    };
                    let _ = write!(out, "${}\r\n{text}", text.len());
                }
                other => {
                    out.truncate(start);
                    let name = CStr::from_ptr(ffi::lua_typename(state, other)).to_string_lossy();
                    return Err(format!(
                        "cannot send a {name} as a redis argument (argument #{index}: strings and numbers only)"
                    ));
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// The result of looking for one reply in `buf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A complete reply of this many bytes, pushed as `value, err`.
    Pushed(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Parses the first reply in `buf` and pushes it as two values: the value
/// (nil for a null or an error) and the error message (nil unless the reply
/// is an error). Arrays become tables with `n` set to their length; an error
/// inside an array becomes `{ err = message }`. A reply that cannot fit in
/// `max_len` bytes, or nests deeper than [`MAX_REPLY_DEPTH`], is an error
/// naming what was wrong; nothing is pushed then, nor when more bytes are needed.
///
/// # Safety
/// The stack contract of `lua::raw` (a live state of this thread in a
/// protected call, no host borrow). Room on the stack is checked here.
pub unsafe fn push_reply(state: *mut lua_State, buf: &[u8], max_len: usize) -> Result<Reply, String> {
    let len = match parse(buf, max_len, &mut Check)? {
        Parsed::Complete(len) => len,
        Parsed::Incomplete => return Ok(Reply::Incomplete),
    };
    // SAFETY: the caller's contract; room for the deepest reply is made
    // before the `Push` sink (which relies on it) starts.
    unsafe {
        if ffi::lua_checkstack(state, MAX_REPLY_DEPTH as c_int + 4) == 0 {
            return Err("no room on the Lua stack for a reply".into());
        }
        let top = ffi::lua_gettop(state);
        let mut sink = Push { state, error: false };
        // The same bytes parsed again: they cannot fail now.
        if parse(&buf[..len], max_len, &mut sink)? != Parsed::Complete(len) {
            ffi::lua_settop(state, top);
            return Err("reply changed between two parses".into());
        }
        if !sink.error {
            ffi::lua_pushnil(state);
        }
    }
    Ok(Reply::Pushed(len))
}

/// What [`parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parsed {
    Complete(usize),
    Incomplete,
}

/// One value read from a reply.
#[derive(Clone, Copy)]
enum Item<'a> {
    /// A simple or bulk string.
    Bytes(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    Null,
    /// The start of an array of this many elements.
    Array(usize),
}

/// Receives the values of a reply as [`parse`] reads them.
trait Sink {
    /// A value that is not an array, `depth` arrays deep.
    fn value(&mut self, item: Item<'_>, depth: usize);
    /// The start of an array of `len` elements.
    fn open(&mut self, len: usize);
    /// The end of the array opened last, `len` elements long.
    fn close(&mut self, len: usize);
    /// The value just finished is element `index` (from 1) of the array opened last.
    fn store(&mut self, index: usize);
}

/// Parses without pushing anything: finds the end of a reply, or its error.
struct Check;

impl Sink for Check {
    fn value(&mut self, _: Item<'_>, _: usize) {}
    fn open(&mut self, _: usize) {}
    fn close(&mut self, _: usize) {}
    fn store(&mut self, _: usize) {}
}

/// Pushes the reply onto the Lua stack (only ever given a checked reply).
///
/// Invariant: only `push_reply` builds one, for the length of its call,
/// after making room for [`MAX_REPLY_DEPTH`] tables and 4 more values, so
/// `state` keeps the stack contract of `lua::raw` while a `Push` lives
/// (what makes its safe `Sink` methods sound).
struct Push {
    state: *mut lua_State,
    /// The reply is an error: `nil, message` is pushed already.
    error: bool,
}

impl Sink for Push {
    fn value(&mut self, item: Item<'_>, depth: usize) {
        let state = self.state;
        // SAFETY: push_reply made room for MAX_REPLY_DEPTH tables and 4 more values.
        unsafe {
            match item {
                Item::Bytes(bytes) => push_bytes(state, bytes),
                Item::Integer(value) => ffi::lua_pushinteger(state, value),
                Item::Null => ffi::lua_pushnil(state),
                Item::Error(message) if depth == 0 => {
                    ffi::lua_pushnil(state);
                    push_bytes(state, message);
                    self.error = true;
                }
                Item::Error(message) => {
                    // An error inside an array (EXEC): { err = message }.
                    ffi::lua_createtable(state, 0, 1);
                    push_bytes(state, message);
                    ffi::lua_setfield(state, -2, c"err".as_ptr());
                }
                Item::Array(_) => unreachable!("arrays are opened, not pushed as values"),
            }
        }
    }

    fn open(&mut self, len: usize) {
        // SAFETY: as in `value`. The reply is complete and checked: its
        // `len` elements have arrived, at least 3 bytes each, so sizing the
        // table for them reserves no more than the bytes justify.
        unsafe { ffi::lua_createtable(self.state, len.min(i32::MAX as usize) as c_int, 1) };
    }

    fn close(&mut self, len: usize) {
        // SAFETY: the array's table is on top of the stack.
        unsafe {
            ffi::lua_pushinteger(self.state, len as i64);
            ffi::lua_setfield(self.state, -2, c"n".as_ptr());
        }
    }

    fn store(&mut self, index: usize) {
        // SAFETY: the value is on top, its array's table right below it.
        unsafe { ffi::lua_rawseti(self.state, -2, index as i64) };
    }
}

/// Pushes bytes as a Lua string.
///
/// # Safety
/// The stack contract of `lua::raw`, with room for one value.
unsafe fn push_bytes(state: *mut lua_State, bytes: &[u8]) {
    // SAFETY: the caller's contract; Lua copies the bytes.
    unsafe { ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len()) };
}

/// Reads the first reply of `buf`, handing its values to `sink`. Iterative:
/// the arrays still open are counted in a fixed array, so no input can make
/// it recurse.
fn parse(buf: &[u8], max_len: usize, sink: &mut impl Sink) -> Result<Parsed, String> {
    // Elements not read yet and total length of each open array.
    let mut left = [0usize; MAX_REPLY_DEPTH];
    let mut lens = [0usize; MAX_REPLY_DEPTH];
    let mut depth = 0;
    // Elements announced by the open arrays and not read yet.
    let mut announced = 0usize;
    let mut pos = 0;
    loop {
        let Some((item, next)) = read_item(buf, pos, max_len)? else {
            return Ok(Parsed::Incomplete);
        };
        pos = next;
        if depth > 0 {
            left[depth - 1] -= 1;
            announced -= 1;
        }
        match item {
            Item::Array(len) => {
                if depth == MAX_REPLY_DEPTH {
                    return Err(format!("reply nested deeper than {MAX_REPLY_DEPTH} levels"));
                }
                announced = announced.saturating_add(len);
                let needed = announced.saturating_mul(MIN_ELEMENT_LEN);
                if needed > max_len.saturating_sub(pos) {
                    return Err(format!(
                        "an array of {len} elements cannot fit in the package size ({max_len} bytes)"
                    ));
                }
                if needed > buf.len() - pos {
                    // Not all here yet: no need to read on before it is.
                    return Ok(Parsed::Incomplete);
                }
                sink.open(len);
                if len > 0 {
                    left[depth] = len;
                    lens[depth] = len;
                    depth += 1;
                    continue;
                }
                sink.close(0);
            }
            other => sink.value(other, depth),
        }
        // A value is finished: store it in its array, closing the arrays it completes.
        loop {
            if depth == 0 {
                return Ok(Parsed::Complete(pos));
            }
            sink.store(lens[depth - 1] - left[depth - 1]);
            if left[depth - 1] > 0 {
                break;
            }
            depth -= 1;
            sink.close(lens[depth]);
        }
    }
}

/// Reads the value starting at `pos`; `None` when its bytes are not all here.
fn read_item(buf: &[u8], pos: usize, max_len: usize) -> Result<Option<(Item<'_>, usize)>, String> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let start = pos + 1;
    Ok(Some(match kind {
        b'+' | b'-' => {
            let Some(end) = line_end(buf, start) else {
                return Ok(None);
            };
            let text = &buf[start..end];
            let item = if kind == b'+' {
                Item::Bytes(text)
            } else {
                Item::Error(text)
            };
            (item, end + 2)
        }
        b':' => {
            let Some((value, next)) = number(buf, start)? else {
                return Ok(None);
            };
            (Item::Integer(value), next)
        }
        b'$' => {
            let Some((len, next)) = number(buf, start)? else {
                return Ok(None);
            };
            match len {
                -1 => (Item::Null, next),
                ..-1 => return Err(format!("bad bulk string length {len}")),
                _ => {
                    let len = len as usize;
                    if len > max_len.saturating_sub(next + 2) {
                        return Err(format!(
                            "a bulk string of {len} bytes cannot fit in the package size ({max_len} bytes)"
                        ));
                    }
                    let end = next + len;
                    let Some(trailer) = buf.get(end..end + 2) else {
                        return Ok(None);
                    };
                    if trailer != b"\r\n" {
                        return Err("a bulk string not followed by CRLF".into());
                    }
                    (Item::Bytes(&buf[next..end]), end + 2)
                }
            }
        }
        b'*' => {
            let Some((len, next)) = number(buf, start)? else {
                return Ok(None);
            };
            match len {
                -1 => (Item::Null, next),
                ..-1 => return Err(format!("bad array length {len}")),
                _ => (Item::Array(len as usize), next),
            }
        }
        other => return Err(format!("unknown reply type byte 0x{other:02x}")),
    }))
}

/// Where the line starting at `from` ends (the index of its `\r\n`).
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        at += buf.get(at..)?.iter().position(|&b| b == b'\n')?;
        if at > from && buf[at - 1] == b'\r' {
            return Some(at - 1);
        }
        at += 1;
    }
}

/// Reads a decimal line (an integer or a length) starting at `from`.
fn number(buf: &[u8], from: usize) -> Result<Option<(i64, usize)>, String> {
    let window = &buf[from..buf.len().min(from + MAX_NUMBER_LINE)];
    let Some(end) = line_end(window, 0) else {
        if window.len() == MAX_NUMBER_LINE {
            return Err("a number line longer than 24 bytes".into());
        }
        return Ok(None);
    };
    let text = &window[..end];
    let value = std::str::from_utf8(text)
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or_else(|| format!("bad number {:?}", String::from_utf8_lossy(text)))?;
    Ok(Some((value, from + end + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_len(buf: &[u8]) -> Result<Parsed, String> {
        parse(buf, 1 << 20, &mut Check)
    }

    #[test]
    fn finds_complete_replies() {
        for reply in [
            &b"+OK\r\n"[..],
            b"-ERR wrong\r\n",
            b":-42\r\n",
            b"$5\r\nhe\r\no\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*3\r\n$3\r\nFoo\r\n$-1\r\n*1\r\n-ERR x\r\n",
            b"+a\rb\nc\r\n",
        ] {
            assert_eq!(parse_len(reply), Ok(Parsed::Complete(reply.len())), "{reply:?}");
            let mut longer = reply.to_vec();
            longer.extend_from_slice(b"+next\r\n");
            assert_eq!(parse_len(&longer), Ok(Parsed::Complete(reply.len())), "{reply:?}");
            for cut in 0..reply.len() {
                assert_eq!(
                    parse_len(&reply[..cut]),
                    Ok(Parsed::Incomplete),
                    "{reply:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_replies_with_a_reason() {
        let cases: [(&[u8], &str); 9] = [
            (b"?\r\n", "unknown reply type byte 0x3f"),
            (b":x\r\n", "bad number \"x\""),
            (b":99999999999999999999\r\n", "bad number"),
            (b":1111111111111111111111111\r\n", "longer than 24 bytes"),
            (b"$-2\r\n", "bad bulk string length -2"),
            (b"$1\r\nab\r\n", "not followed by CRLF"),
            (b"*-5\r\n", "bad array length -5"),
            (b"$2000000\r\n", "cannot fit in the package size"),
            (b"*400000\r\n", "cannot fit in the package size"),
        ];
        for (bytes, reason) in cases {
            let error = parse_len(bytes).unwrap_err();
            assert!(error.contains(reason), "{bytes:?}: {error}");
        }
    }

    #[test]
    fn nesting_is_checked_while_parsing() {
        let nest = |levels: usize| {
            let mut reply = b"*1\r\n".repeat(levels);
            reply.extend_from_slice(b":1\r\n");
            reply
        };
        assert_eq!(parse_len(&nest(32)), Ok(Parsed::Complete(32 * 4 + 4)));
        assert_eq!(parse_len(&nest(33)).unwrap_err(), "reply nested deeper than 32 levels");
        // Half a million levels: found at level 33, without recursion.
        assert!(parse_len(&nest(500_000)[..2_000_000]).is_err());
        // An incomplete deep reply is rejected as soon as level 33 arrives.
        assert!(parse_len(&nest(40)[..33 * 4]).is_err());
    }

    #[test]
    fn arrays_larger_than_the_bytes_wait_without_reading_on() {
        // 1,000 elements need at least 3,000 more bytes.
        let mut reply = b"*1000\r\n".to_vec();
        reply.extend_from_slice(&b":1\r\n".repeat(10));
        assert_eq!(parse_len(&reply), Ok(Parsed::Incomplete));
        reply.extend_from_slice(&b":1\r\n".repeat(990));
        assert_eq!(parse_len(&reply), Ok(Parsed::Complete(reply.len())));
    }
}
