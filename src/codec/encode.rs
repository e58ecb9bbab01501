//! Lua values on the stack to MessagePack.

use std::ffi::{CStr, c_int, c_void};
use std::fmt::Write as _;

use mlua::ffi::{self, lua_State};

use super::{MAX_DEPTH, with_string};

/// One step of the path to the value being written, for error messages.
enum Step {
    /// An array element.
    Index(i64),
    /// A map entry whose key sits at this stack index.
    KeyAt(c_int),
}

/// Writes Lua values as MessagePack.
///
/// Invariant: only `encode_values` builds one, and only for the length of its
/// call, so `state` keeps the stack contract of `lua::raw` for as long as an
/// encoder lives; each `Step::KeyAt` of `path` names a key on the stack.
/// That is what makes the safe `error` sound.
struct Encoder<'a> {
    state: *mut lua_State,
    out: &'a mut Vec<u8>,
    ancestors: Vec<*const c_void>,
    path: Vec<Step>,
    argument: c_int,
}

/// Writes the stack values `first..=last` as one MessagePack array.
/// On error nothing useful is left in `out` past its old length, the stack
/// is as it was, and the message names the value and where it is.
///
/// # Safety
/// The stack contract of `lua::raw` (a live state of this thread in a
/// protected call, no host borrow), with `first..=last` valid stack indices.
pub unsafe fn encode_args(state: *mut lua_State, first: c_int, last: c_int, out: &mut Vec<u8>) -> Result<(), String> {
    let count = (last - first + 1).max(0) as u32;
    write_array_header(out, count);
    // SAFETY: the caller's contract, passed on.
    unsafe { encode_values(state, first, last, out) }
}

/// Writes the stack values `first..=last` one after the other, without an
/// array header (for callers that write the header and leading elements).
/// Errors as [`encode_args`].
///
/// # Safety
/// As [`encode_args`].
pub unsafe fn encode_values(state: *mut lua_State, first: c_int, last: c_int, out: &mut Vec<u8>) -> Result<(), String> {
    // SAFETY: `state` is live (the caller's promise); lua_gettop only reads it.
    let top = unsafe { ffi::lua_gettop(state) };
    let mut encoder = Encoder {
        state,
        out,
        ancestors: Vec::new(),
        path: Vec::new(),
        argument: first,
    };
    for index in first..=last {
        encoder.argument = index;
        // SAFETY: the caller's contract; `index` is one of the valid indices.
        if let Err(error) = unsafe { encoder.value(index, 0) } {
            // SAFETY: `top` was the top before the encoder pushed anything.
            unsafe { ffi::lua_settop(state, top) };
            return Err(error);
        }
    }
    Ok(())
}

impl Encoder<'_> {
    /// Writes the value at `index`.
    ///
    /// # Safety
    /// The stack contract of `lua::raw` on `self.state`, `index` valid.
    unsafe fn value(&mut self, index: c_int, depth: usize) -> Result<(), String> {
        let state = self.state;
        // SAFETY: the contract; each accessor matches the type just checked
        // (with_string gets a string), and a string's bytes are copied into
        // `out` while it is on the stack.
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TNIL => self.out.push(0xc0),
                ffi::LUA_TBOOLEAN => self.out.push(if ffi::lua_toboolean(state, index) != 0 {
                    0xc3
                } else {
                    0xc2
                }),
                ffi::LUA_TNUMBER => {
                    if ffi::lua_isinteger(state, index) != 0 {
                        write_integer(self.out, ffi::lua_tointegerx(state, index, std::ptr::null_mut()));
                    } else {
                        self.out.push(0xcb);
                        let value = ffi::lua_tonumberx(state, index, std::ptr::null_mut());
                        self.out.extend_from_slice(&value.to_bits().to_be_bytes());
                    }
                }
                ffi::LUA_TSTRING => with_string(state, index, |bytes| {
                    let len = u32::try_from(bytes.len()).map_err(|_| self.error("a string longer than 4 GiB"))?;
                    let text = bytes.is_ascii() || std::str::from_utf8(bytes).is_ok();
                    write_string_header(self.out, len, text);
                    self.out.extend_from_slice(bytes);
                    Ok::<(), String>(())
                })?,
                ffi::LUA_TTABLE => self.table(index, depth + 1)?,
                other => {
                    let name = CStr::from_ptr(ffi::lua_typename(state, other)).to_string_lossy();
                    return Err(self.error(&format!("a {name}")));
                }
            }
        }
        Ok(())
    }

    /// Writes the table at `index`, as an array or a map.
    ///
    /// # Safety
    /// As [`Self::value`], with a table at `index`.
    unsafe fn table(&mut self, index: c_int, depth: usize) -> Result<(), String> {
        let state = self.state;
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("a table nested deeper than {MAX_DEPTH} levels")));
        }
        // SAFETY: the contract; room for a traversal (key, value and one
        // nested value) is made before it starts.
        unsafe {
            let identity = ffi::lua_topointer(state, index);
            if self.ancestors.contains(&identity) {
                return Err(self.error("a table that contains itself (a cycle)"));
            }
            if ffi::lua_checkstack(state, 4) == 0 {
                return Err(self.error("a table too large for the Lua stack"));
            }
            let index = ffi::lua_absindex(state, index);
            self.ancestors.push(identity);
            let sequence_len = ffi::lua_rawlen(state, index);
            if sequence_len == 0 {
                self.map_single_pass(index, depth)?;
            } else {
                self.sequence_or_map(index, sequence_len, depth)?;
            }
            self.ancestors.pop();
        }
        Ok(())
    }

    /// A table with no border: a map, written in one traversal with its
    /// count patched in afterwards.
    ///
    /// # Safety
    /// As [`Self::value`], with a table at the absolute index `index` and
    /// room for a traversal.
    unsafe fn map_single_pass(&mut self, index: c_int, depth: usize) -> Result<(), String> {
        let state = self.state;
        let header_at = self.out.len();
        self.out.extend_from_slice(&[0; 5]);
        let mut pairs = 0u64;
        // SAFETY: the contract; lua_next pushes a key and a value, `entry`
        // pops the value, and the last lua_next pops the key.
        unsafe {
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, index) != 0 {
                pairs += 1;
                self.entry(depth)?;
            }
        }
        let count = u32::try_from(pairs).map_err(|_| self.error("a table with too many entries"))?;
        let mut header = [0u8; 5];
        let header_len = map_header(&mut header, count);
        // Move the entries back over the unused part of the reserved header.
        self.out.copy_within(header_at + 5.., header_at + header_len);
        self.out.truncate(self.out.len() - (5 - header_len));
        self.out[header_at..header_at + header_len].copy_from_slice(&header[..header_len]);
        Ok(())
    }

    /// A table with a border n: an array when its keys are exactly 1..n
    /// (a border alone is not enough: {1, 2, nil, 4, [10] = x} has border 4
    /// and four pairs), else a map.
    ///
    /// # Safety
    /// As [`Self::map_single_pass`].
    unsafe fn sequence_or_map(&mut self, index: c_int, sequence_len: usize, depth: usize) -> Result<(), String> {
        let state = self.state;
        // SAFETY: the contract; each traversal pops what lua_next pushed, and
        // each element pushed by lua_rawgeti is popped after it is written.
        unsafe {
            let mut pairs = 0usize;
            let mut in_sequence = 0usize;
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, index) != 0 {
                pairs += 1;
                if ffi::lua_isinteger(state, -2) != 0 {
                    let key = ffi::lua_tointegerx(state, -2, std::ptr::null_mut());
                    if key >= 1 && key as u64 <= sequence_len as u64 {
                        in_sequence += 1;
                    }
                }
                ffi::lua_pop(state, 1);
            }
            let count = u32::try_from(pairs).map_err(|_| self.error("a table with too many entries"))?;
            if pairs == sequence_len && in_sequence == sequence_len {
                write_array_header(self.out, count);
                for at in 1..=sequence_len as i64 {
                    ffi::lua_rawgeti(state, index, at);
                    self.path.push(Step::Index(at));
                    self.value(-1, depth)?;
                    self.path.pop();
                    ffi::lua_pop(state, 1);
                }
            } else {
                let mut header = [0u8; 5];
                let header_len = map_header(&mut header, count);
                self.out.extend_from_slice(&header[..header_len]);
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, index) != 0 {
                    self.entry(depth)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the key and value lua_next left on the stack and pops the value.
    ///
    /// # Safety
    /// As [`Self::value`], with a key and a value from lua_next on top.
    unsafe fn entry(&mut self, depth: usize) -> Result<(), String> {
        let state = self.state;
        // SAFETY: the key and value are on top (the caller's promise).
        unsafe {
            let key_at = ffi::lua_absindex(state, -2);
            self.path.push(Step::KeyAt(key_at));
            self.value(key_at, depth)?;
            self.value(-1, depth)?;
            self.path.pop();
            ffi::lua_pop(state, 1);
        }
        Ok(())
    }

    /// "cannot send <what> (argument #2, at .items[3])"
    fn error(&self, what: &str) -> String {
        let mut message = format!("cannot send {what} (argument #{}", self.argument);
        if !self.path.is_empty() {
            message.push_str(", at ");
            for step in &self.path {
                // SAFETY: the encoder's invariant: a live state, and the
                // path's keys on the stack.
                unsafe { self.describe_step(step, &mut message) };
            }
        }
        message.push(')');
        message
    }

    /// Writes one step of the path (`.name`, `[3]`, `["a b"]`).
    ///
    /// # Safety
    /// The stack contract of `lua::raw` on `self.state`; a `KeyAt` step's
    /// key is still at its index.
    unsafe fn describe_step(&self, step: &Step, out: &mut String) {
        let state = self.state;
        match *step {
            Step::Index(at) => {
                let _ = write!(out, "[{at}]");
            }
            // SAFETY: the key is at `at` (the caller's promise); a string key
            // is copied while it is there, and type names are static strings.
            Step::KeyAt(at) => unsafe {
                match ffi::lua_type(state, at) {
                    ffi::LUA_TSTRING => {
                        let key = with_string(state, at, |bytes| String::from_utf8_lossy(bytes).into_owned());
                        let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                        if plain {
                            let _ = write!(out, ".{key}");
                        } else {
                            let _ = write!(out, "[{key:?}]");
                        }
                    }
                    ffi::LUA_TNUMBER if ffi::lua_isinteger(state, at) != 0 => {
                        let _ = write!(out, "[{}]", ffi::lua_tointegerx(state, at, std::ptr::null_mut()));
                    }
                    ffi::LUA_TNUMBER => {
                        let _ = write!(out, "[{}]", ffi::lua_tonumberx(state, at, std::ptr::null_mut()));
                    }
                    other => {
                        let name = CStr::from_ptr(ffi::lua_typename(state, other)).to_string_lossy();
                        let _ = write!(out, "[<{name} key>]");
                    }
                }
            },
        }
    }
}

// MessagePack markers, written directly: the encoder's hot path.

fn write_integer(out: &mut Vec<u8>, value: i64) {
    match value {
        0..=0x7f => out.push(value as u8),
        -32..=-1 => out.push(value as u8),
        0x80..=0xff => out.extend_from_slice(&[0xcc, value as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(value as u64).to_be_bytes());
        }
        -0x80..=-33 => out.extend_from_slice(&[0xd0, value as u8]),
        -0x8000..=-0x81 => {
            out.push(0xd1);
            out.extend_from_slice(&(value as i16).to_be_bytes());
        }
        -0x8000_0000..=-0x8001 => {
            out.push(0xd2);
            out.extend_from_slice(&(value as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

fn write_string_header(out: &mut Vec<u8>, len: u32, text: bool) {
    match (text, len) {
        (true, 0..=31) => out.push(0xa0 | len as u8),
        (true, 32..=0xff) => out.extend_from_slice(&[0xd9, len as u8]),
        (false, 0..=0xff) => out.extend_from_slice(&[0xc4, len as u8]),
        (_, 0x100..=0xffff) => {
            out.push(if text { 0xda } else { 0xc5 });
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(if text { 0xdb } else { 0xc6 });
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

fn write_array_header(out: &mut Vec<u8>, len: u32) {
    match len {
        0..=15 => out.push(0x90 | len as u8),
        16..=0xffff => {
            out.push(0xdc);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdd);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// Writes a map header into `header`; returns its length.
fn map_header(header: &mut [u8; 5], len: u32) -> usize {
    match len {
        0..=15 => {
            header[0] = 0x80 | len as u8;
            1
        }
        16..=0xffff => {
            header[0] = 0xde;
            header[1..3].copy_from_slice(&(len as u16).to_be_bytes());
            3
        }
        _ => {
            header[0] = 0xdf;
            header[1..5].copy_from_slice(&len.to_be_bytes());
            5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_match_rmp() {
        let mut values: Vec<i64> = vec![i64::MIN, i64::MAX, 0, -1, -32, -33, 127, 128, 255, 256, 65535, 65536];
        values.extend([
            -128,
            -129,
            -32768,
            -32769,
            -2147483648,
            -2147483649,
            4294967295,
            4294967296,
        ]);
        for v in values {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_integer(&mut ours, v);
            rmp::encode::write_sint(&mut theirs, v).unwrap();
            assert_eq!(ours, theirs, "integer {v}");
        }
        for len in [0u32, 31, 32, 255, 256, 65535, 65536] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_string_header(&mut ours, len, true);
            rmp::encode::write_str_len(&mut theirs, len).unwrap();
            assert_eq!(ours, theirs, "str {len}");
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_string_header(&mut ours, len, false);
            rmp::encode::write_bin_len(&mut theirs, len).unwrap();
            assert_eq!(ours, theirs, "bin {len}");
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_array_header(&mut ours, len);
            rmp::encode::write_array_len(&mut theirs, len).unwrap();
            assert_eq!(ours, theirs, "array {len}");
            let mut header = [0u8; 5];
            let used = map_header(&mut header, len);
            let mut theirs = Vec::new();
            rmp::encode::write_map_len(&mut theirs, len).unwrap();
            assert_eq!(&header[..used], &theirs[..], "map {len}");
        }
    }
}
