//! Lua values on the stack to MessagePack.
//!
//! The hot path makes no allocation and as few Lua API calls as it can:
//! each table is walked once with `lua_next` (a sequence whose keys come
//! in order 1..n is written as an array on the way), and the path to a
//! value that cannot be sent is only built when that happens, on the way
//! out of the recursion.

use std::ffi::{CStr, c_int, c_void};
use std::fmt::Write as _;

use mlua::ffi::{self, lua_State};

use super::{MAX_DEPTH, with_string};

/// Why a value could not be written, and where (filled in on the way out).
struct Failure {
    /// What could not be sent ("a function").
    what: String,
    /// The steps to it, innermost first (`.name`, `[3]`).
    path: Vec<String>,
}

/// Boxed so that the `Ok` path returns one register.
type Outcome = Result<(), Box<Failure>>;

/// A failure at the value being written; the callers add the path.
#[cold]
fn fail(what: String) -> Outcome {
    Err(Box::new(Failure { what, path: Vec::new() }))
}

/// Writes Lua values as MessagePack.
///
/// Invariant: only `encode_values` builds one, and only for the length of its
/// call, so `state` keeps the stack contract of `lua::raw` for as long as an
/// encoder lives, and the stack above `base` holds only what the encoder
/// pushed: at a table of depth d (the outermost is 1) the top is
/// `base + 2 * (d - 1)`, each enclosing table's traversal key and value.
struct Encoder<'a> {
    state: *mut lua_State,
    out: &'a mut Vec<u8>,
    /// The stack top when encoding started.
    base: c_int,
    /// The tables being written, outermost first: `ancestors[d - 1]` is the
    /// one at depth d (for cycles).
    ancestors: [*const c_void; MAX_DEPTH],
    /// The deepest level for which `lua_checkstack` made room (the top at a
    /// depth is always the same, so once per depth and call is enough).
    room: usize,
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
    unsafe { encode_values(state, first, last, first, out) }
}

/// Writes the stack values `first..=last` one after the other, without an
/// array header (for callers that write the header and leading elements).
/// Errors as [`encode_args`], naming the value at `first` "argument
/// #`shown_first`" (the number it has in the call the script wrote, when a
/// wrapper added arguments in front).
///
/// # Safety
/// As [`encode_args`].
pub unsafe fn encode_values(
    state: *mut lua_State,
    first: c_int,
    last: c_int,
    shown_first: c_int,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: `state` is live (the caller's promise); lua_gettop only reads it.
    let top = unsafe { ffi::lua_gettop(state) };
    let mut encoder = Encoder {
        state,
        out,
        base: top,
        ancestors: [std::ptr::null(); MAX_DEPTH],
        room: 0,
    };
    for index in first..=last {
        // SAFETY: the caller's contract; `index` is one of the valid
        // indices, made absolute as `value` wants (nothing is pushed yet).
        let result = unsafe { encoder.value(ffi::lua_absindex(state, index), 0) };
        if let Err(failure) = result {
            let message = describe_failure(&failure, index - first + shown_first);
            // SAFETY: `top` was the top before the encoder pushed anything.
            unsafe { ffi::lua_settop(state, top) };
            return Err(message);
        }
    }
    Ok(())
}

/// "cannot send <what> (argument #2, at .items[3])"
#[cold]
fn describe_failure(failure: &Failure, argument: c_int) -> String {
    let mut message = format!("cannot send {} (argument #{argument}", failure.what);
    if !failure.path.is_empty() {
        message.push_str(", at ");
        for step in failure.path.iter().rev() {
            message.push_str(step);
        }
    }
    message.push(')');
    message
}

impl Encoder<'_> {
    /// Writes the value at the absolute index `index`. Inlined in each
    /// loop: only tables recurse (through [`Self::table`]).
    ///
    /// # Safety
    /// The stack contract of `lua::raw` on `self.state`, `index` a valid
    /// absolute index, and the encoder's invariant.
    #[inline(always)]
    unsafe fn value(&mut self, index: c_int, depth: usize) -> Outcome {
        let state = self.state;
        // SAFETY: the contract; each accessor matches the type just checked
        // (with_string gets a string), and a string's bytes are copied into
        // `out` while it is on the stack.
        unsafe {
            match ffi::lua_type(state, index) {
                ffi::LUA_TSTRING => with_string(state, index, |bytes| {
                    if bytes.len() <= 16 && put_short_ascii(self.out, bytes) {
                        return Ok(());
                    }
                    let Ok(len) = u32::try_from(bytes.len()) else {
                        return fail("a string longer than 4 GiB".into());
                    };
                    let text = bytes.is_ascii() || std::str::from_utf8(bytes).is_ok();
                    put(self.out, string_header(len, text), bytes);
                    Ok(())
                }),
                ffi::LUA_TNUMBER => {
                    let small = if ffi::lua_isinteger(state, index) != 0 {
                        integer(ffi::lua_tointegerx(state, index, std::ptr::null_mut()))
                    } else {
                        let value = ffi::lua_tonumberx(state, index, std::ptr::null_mut());
                        Small::with(0xcb, value.to_bits().to_be_bytes())
                    };
                    put(self.out, small, &[]);
                    Ok(())
                }
                ffi::LUA_TTABLE => self.table(index, depth + 1),
                ffi::LUA_TBOOLEAN => {
                    let marker = if ffi::lua_toboolean(state, index) != 0 {
                        0xc3
                    } else {
                        0xc2
                    };
                    put(self.out, Small::with(marker, []), &[]);
                    Ok(())
                }
                ffi::LUA_TNIL => {
                    put(self.out, Small::with(0xc0, []), &[]);
                    Ok(())
                }
                other => self.unsendable(other),
            }
        }
    }

    /// The failure for a value of a type MessagePack has no place for.
    ///
    /// # Safety
    /// `self.state` is live; `kind` is a Lua type tag.
    #[cold]
    #[inline(never)]
    unsafe fn unsendable(&self, kind: c_int) -> Outcome {
        // SAFETY: a live state (the caller's promise); lua_typename returns a
        // static string for any type tag.
        let name = unsafe { CStr::from_ptr(ffi::lua_typename(self.state, kind)) };
        fail(format!("a {}", name.to_string_lossy()))
    }

    /// Writes the table at the absolute index `index` (at depth `depth`),
    /// as an array or a map.
    ///
    /// # Safety
    /// As [`Self::value`], with a table at `index`.
    #[inline(never)]
    unsafe fn table(&mut self, index: c_int, depth: usize) -> Outcome {
        let state = self.state;
        if depth > MAX_DEPTH {
            return fail(format!("a table nested deeper than {MAX_DEPTH} levels"));
        }
        // SAFETY: the contract; room for a traversal (key, value and one
        // nested value) is made before it starts (see `room`).
        unsafe {
            let identity = ffi::lua_topointer(state, index);
            if self.ancestors[..depth - 1].contains(&identity) {
                return fail("a table that contains itself (a cycle)".into());
            }
            if depth > self.room {
                if ffi::lua_checkstack(state, 4) == 0 {
                    return fail("a table too large for the Lua stack".into());
                }
                self.room = depth;
            }
            self.ancestors[depth - 1] = identity;
            match ffi::lua_rawlen(state, index) {
                0 => self.map_single_pass(index, depth),
                len => self.sequence(index, len, depth),
            }
        }
    }

    /// Where the traversal of a table at `depth` keeps its key (the value
    /// is just above), by the encoder's invariant.
    fn key_at(&self, depth: usize) -> c_int {
        self.base + 2 * depth as c_int - 1
    }

    /// A table with no border: a map, written in one traversal with its
    /// count patched in afterwards.
    ///
    /// # Safety
    /// As [`Self::table`], with room for a traversal.
    unsafe fn map_single_pass(&mut self, index: c_int, depth: usize) -> Outcome {
        let state = self.state;
        let key_at = self.key_at(depth);
        // Most maps have at most 15 entries: a fixmap marker, widened if not.
        let header_at = self.out.len();
        put(self.out, map_header(0), &[]);
        let mut pairs = 0u64;
        // SAFETY: the contract; lua_next pushes a key and a value at key_at
        // (the top, by the invariant), `entry` pops the value, and the last
        // lua_next pops the key.
        unsafe {
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, index) != 0 {
                pairs += 1;
                self.entry(key_at, depth)?;
            }
        }
        let Ok(count) = u32::try_from(pairs) else {
            return fail("a table with too many entries".into());
        };
        if count <= 15 {
            self.out[header_at] = 0x80 | count as u8;
        } else {
            let header = map_header(count);
            self.out
                .splice(header_at..=header_at, header.bytes[..header.len].iter().copied());
        }
        Ok(())
    }

    /// A table with a border n: written as an array in one traversal when
    /// the keys come in order 1..n (as they do from the array part), else
    /// started over by [`Self::sequence_or_map`].
    ///
    /// # Safety
    /// As [`Self::map_single_pass`].
    unsafe fn sequence(&mut self, index: c_int, len: usize, depth: usize) -> Outcome {
        let state = self.state;
        let Ok(count) = u32::try_from(len) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.sequence_or_map(index, len, depth) };
        };
        let key_at = self.key_at(depth);
        let header_at = self.out.len();
        write_array_header(self.out, count);
        let mut expected: i64 = 1;
        // SAFETY: the contract; lua_next pushes a key and a value at key_at
        // (the top, by the invariant); the value is popped after it is
        // written, the key by the last lua_next or before starting over.
        unsafe {
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, index) != 0 {
                let in_order = expected as u64 <= len as u64
                    && ffi::lua_isinteger(state, key_at) != 0
                    && ffi::lua_tointegerx(state, key_at, std::ptr::null_mut()) == expected;
                if !in_order {
                    ffi::lua_settop(state, key_at - 1);
                    self.out.truncate(header_at);
                    return self.sequence_or_map(index, len, depth);
                }
                if let Err(mut failure) = self.value(key_at + 1, depth) {
                    failure.path.push(format!("[{expected}]"));
                    return Err(failure);
                }
                ffi::lua_settop(state, key_at);
                expected += 1;
            }
            if expected as u64 - 1 != len as u64 {
                self.out.truncate(header_at);
                return self.sequence_or_map(index, len, depth);
            }
        }
        Ok(())
    }

    /// A table with a border n whose traversal is not 1..n in order: an
    /// array when its keys are exactly 1..n (a border alone is not enough:
    /// {1, 2, nil, 4, [10] = x} has border 4 and four pairs), else a map.
    ///
    /// # Safety
    /// As [`Self::map_single_pass`].
    #[cold]
    unsafe fn sequence_or_map(&mut self, index: c_int, sequence_len: usize, depth: usize) -> Outcome {
        let state = self.state;
        let key_at = self.key_at(depth);
        // SAFETY: the contract; each traversal pops what lua_next pushed, and
        // each element pushed by lua_rawgeti (at key_at + 1, the top, above
        // a placeholder) is popped after it is written.
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
            let Ok(count) = u32::try_from(pairs) else {
                return fail("a table with too many entries".into());
            };
            if pairs == sequence_len && in_sequence == sequence_len {
                write_array_header(self.out, count);
                // A placeholder in the key's slot, so that the elements sit
                // where the invariant puts a traversal's values.
                ffi::lua_pushnil(state);
                for at in 1..=sequence_len as i64 {
                    ffi::lua_rawgeti(state, index, at);
                    if let Err(mut failure) = self.value(key_at + 1, depth) {
                        failure.path.push(format!("[{at}]"));
                        return Err(failure);
                    }
                    ffi::lua_pop(state, 1);
                }
                ffi::lua_pop(state, 1);
            } else {
                put(self.out, map_header(count), &[]);
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, index) != 0 {
                    self.entry(key_at, depth)?;
                }
            }
        }
        Ok(())
    }

    /// Writes the key (at `key_at`) and value (above it) that lua_next
    /// left on the stack and pops the value.
    ///
    /// # Safety
    /// As [`Self::value`], with a key and a value from lua_next at `key_at`
    /// and `key_at + 1`, the top.
    #[inline(always)]
    unsafe fn entry(&mut self, key_at: c_int, depth: usize) -> Outcome {
        let state = self.state;
        // SAFETY: the key and value are there (the caller's promise); on
        // failure the key is still at key_at for describe_key.
        unsafe {
            let mut result = self.value(key_at, depth);
            if result.is_ok() {
                result = self.value(key_at + 1, depth);
            }
            if let Err(mut failure) = result {
                failure.path.push(self.describe_key(key_at));
                return Err(failure);
            }
            ffi::lua_settop(state, key_at);
        }
        Ok(())
    }

    /// One step of the path to a map entry (`.name`, `[3]`, `["a b"]`).
    ///
    /// # Safety
    /// The stack contract of `lua::raw` on `self.state`, with the key at `at`.
    #[cold]
    unsafe fn describe_key(&self, at: c_int) -> String {
        let state = self.state;
        let mut out = String::new();
        // SAFETY: the key is at `at` (the caller's promise); a string key
        // is copied while it is there, and type names are static strings.
        unsafe {
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
        }
        out
    }
}

// MessagePack markers, written directly: the encoder's hot path. Each is
// built in a fixed 9-byte buffer and appended with one capacity check.

/// A marker and its payload (at most 9 bytes), `len` of them used.
struct Small {
    bytes: [u8; 9],
    len: usize,
}

impl Small {
    /// `marker` followed by the big-endian `payload`.
    #[inline(always)]
    fn with<const N: usize>(marker: u8, payload: [u8; N]) -> Small {
        let mut bytes = [0u8; 9];
        bytes[0] = marker;
        bytes[1..1 + N].copy_from_slice(&payload);
        Small { bytes, len: 1 + N }
    }
}

/// Appends `small` and then `tail`, with one capacity check.
#[inline(always)]
fn put(out: &mut Vec<u8>, small: Small, tail: &[u8]) {
    out.reserve(9 + tail.len());
    let at = out.len();
    // SAFETY: `reserve` made room for 9 + tail.len() bytes past `at`: all 9
    // bytes of `small` are written there (its unused ones are overwritten by
    // `tail` or left past the length), then `tail` right after its used ones;
    // the new length covers only initialized bytes.
    unsafe {
        let end = out.as_mut_ptr().add(at);
        end.cast::<[u8; 9]>().write_unaligned(small.bytes);
        std::ptr::copy_nonoverlapping(tail.as_ptr(), end.add(small.len), tail.len());
        out.set_len(at + small.len + tail.len());
    }
}

/// Appends a string of at most 16 bytes as a fixstr if it is ASCII (most
/// keys and many values are): the check and the copy use the same two
/// overlapping loads, no loop and no memcpy call. Returns false, having
/// written nothing, for other strings.
#[inline(always)]
fn put_short_ascii(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let len = bytes.len();
    debug_assert!(len <= 16);
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let (first, last) = match len {
        8.. => (word(0), word(len - 8)),
        4.. => (u64::from(half(0)), u64::from(half(len - 4))),
        1.. => (
            u64::from(bytes[0]) | u64::from(bytes[len / 2]) << 8,
            u64::from(bytes[len - 1]),
        ),
        0 => (0, 0),
    };
    if (first | last) & 0x8080_8080_8080_8080 != 0 {
        return false;
    }
    out.reserve(17);
    let at = out.len();
    // SAFETY: `reserve` made room for 17 bytes past `at`; the header and
    // the `len` (at most 16) bytes after it are written, each store within
    // them, and the new length covers exactly those.
    unsafe {
        let end = out.as_mut_ptr().add(at);
        end.write(0xa0 | len as u8);
        let data = end.add(1);
        match len {
            8.. => {
                data.cast::<u64>().write_unaligned(first.to_le());
                data.add(len - 8).cast::<u64>().write_unaligned(last.to_le());
            }
            4.. => {
                data.cast::<u32>().write_unaligned((first as u32).to_le());
                data.add(len - 4).cast::<u32>().write_unaligned((last as u32).to_le());
            }
            1.. => {
                data.write(first as u8);
                data.add(len / 2).write((first >> 8) as u8);
                data.add(len - 1).write(last as u8);
            }
            0 => {}
        }
        out.set_len(at + 1 + len);
    }
    true
}

#[inline(always)]
fn integer(value: i64) -> Small {
    match value {
        -32..=0x7f => Small::with(value as u8, []),
        0x80..=0xff => Small::with(0xcc, [value as u8]),
        0x100..=0xffff => Small::with(0xcd, (value as u16).to_be_bytes()),
        0x1_0000..=0xffff_ffff => Small::with(0xce, (value as u32).to_be_bytes()),
        0x1_0000_0000.. => Small::with(0xcf, (value as u64).to_be_bytes()),
        -0x80..=-33 => Small::with(0xd0, [value as u8]),
        -0x8000..=-0x81 => Small::with(0xd1, (value as i16).to_be_bytes()),
        -0x8000_0000..=-0x8001 => Small::with(0xd2, (value as i32).to_be_bytes()),
        _ => Small::with(0xd3, value.to_be_bytes()),
    }
}

#[inline(always)]
fn string_header(len: u32, text: bool) -> Small {
    match (text, len) {
        (true, 0..=31) => Small::with(0xa0 | len as u8, []),
        (true, 32..=0xff) => Small::with(0xd9, [len as u8]),
        (false, 0..=0xff) => Small::with(0xc4, [len as u8]),
        (_, 0x100..=0xffff) => Small::with(if text { 0xda } else { 0xc5 }, (len as u16).to_be_bytes()),
        _ => Small::with(if text { 0xdb } else { 0xc6 }, len.to_be_bytes()),
    }
}

fn array_header(len: u32) -> Small {
    match len {
        0..=15 => Small::with(0x90 | len as u8, []),
        16..=0xffff => Small::with(0xdc, (len as u16).to_be_bytes()),
        _ => Small::with(0xdd, len.to_be_bytes()),
    }
}

fn map_header(len: u32) -> Small {
    match len {
        0..=15 => Small::with(0x80 | len as u8, []),
        16..=0xffff => Small::with(0xde, (len as u16).to_be_bytes()),
        _ => Small::with(0xdf, len.to_be_bytes()),
    }
}

fn write_array_header(out: &mut Vec<u8>, len: u32) {
    put(out, array_header(len), &[]);
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
            put(&mut ours, integer(v), &[]);
            rmp::encode::write_sint(&mut theirs, v).unwrap();
            assert_eq!(ours, theirs, "integer {v}");
        }
        for len in [0u32, 31, 32, 255, 256, 65535, 65536] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            put(&mut ours, string_header(len, true), &[]);
            rmp::encode::write_str_len(&mut theirs, len).unwrap();
            assert_eq!(ours, theirs, "str {len}");
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            put(&mut ours, string_header(len, false), &[]);
            rmp::encode::write_bin_len(&mut theirs, len).unwrap();
            assert_eq!(ours, theirs, "bin {len}");
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_array_header(&mut ours, len);
            rmp::encode::write_array_len(&mut theirs, len).unwrap();
            assert_eq!(ours, theirs, "array {len}");
            let header = map_header(len);
            let mut theirs = Vec::new();
            rmp::encode::write_map_len(&mut theirs, len).unwrap();
            assert_eq!(&header.bytes[..header.len], &theirs[..], "map {len}");
        }
    }

    #[test]
    fn short_strings_match_rmp() {
        for len in 0..=17usize {
            let ascii: Vec<u8> = (0..len).map(|i| b'a' + i as u8).collect();
            let mut cases = vec![ascii.clone()];
            for high in 0..len {
                let mut bytes = ascii.clone();
                bytes[high] = 0xff;
                cases.push(bytes);
            }
            for bytes in cases {
                let mut ours = Vec::new();
                if !(len <= 16 && put_short_ascii(&mut ours, &bytes)) {
                    assert!(len > 16 || !bytes.is_ascii(), "{bytes:?} is ASCII");
                    put(&mut ours, string_header(len as u32, bytes.is_ascii()), &bytes);
                }
                let mut theirs = Vec::new();
                if bytes.is_ascii() {
                    rmp::encode::write_str(&mut theirs, std::str::from_utf8(&bytes).unwrap()).unwrap();
                } else {
                    rmp::encode::write_bin(&mut theirs, &bytes).unwrap();
                }
                assert_eq!(ours, theirs, "{bytes:?}");
            }
        }
    }
}
