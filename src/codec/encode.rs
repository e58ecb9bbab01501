//! Lua values on the stack to MessagePack.

use std::ffi::{CStr, c_int, c_void};
use std::fmt::Write as _;

use mlua::ffi::{self, lua_State};

use super::MAX_DEPTH;

/// One step of the path to the value being written, for error messages.
enum Step {
    /// An array element.
    Index(i64),
    /// A map entry whose key sits at this stack index.
    KeyAt(c_int),
}

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
/// `state` must be a valid Lua state with `first..=last` valid stack indices.
pub unsafe fn encode_args(state: *mut lua_State, first: c_int, last: c_int, out: &mut Vec<u8>) -> Result<(), String> {
    let count = (last - first + 1).max(0) as u32;
    let _ = rmp::encode::write_array_len(out, count);
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
        if let Err(error) = unsafe { encoder.value(index, 0) } {
            unsafe { ffi::lua_settop(state, top) };
            return Err(error);
        }
    }
    Ok(())
}

impl Encoder<'_> {
    unsafe fn value(&mut self, index: c_int, depth: usize) -> Result<(), String> {
        let state = self.state;
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
                        let _ =
                            rmp::encode::write_sint(self.out, ffi::lua_tointegerx(state, index, std::ptr::null_mut()));
                    } else {
                        let _ =
                            rmp::encode::write_f64(self.out, ffi::lua_tonumberx(state, index, std::ptr::null_mut()));
                    }
                }
                ffi::LUA_TSTRING => {
                    let mut len = 0usize;
                    let ptr = ffi::lua_tolstring(state, index, &mut len);
                    let bytes = std::slice::from_raw_parts(ptr.cast::<u8>(), len);
                    let len = u32::try_from(len).map_err(|_| self.error("a string longer than 4 GiB"))?;
                    if std::str::from_utf8(bytes).is_ok() {
                        let _ = rmp::encode::write_str_len(self.out, len);
                    } else {
                        let _ = rmp::encode::write_bin_len(self.out, len);
                    }
                    self.out.extend_from_slice(bytes);
                }
                ffi::LUA_TTABLE => self.table(index, depth + 1)?,
                other => {
                    let name = CStr::from_ptr(ffi::lua_typename(state, other)).to_string_lossy();
                    return Err(self.error(&format!("a {name}")));
                }
            }
        }
        Ok(())
    }

    unsafe fn table(&mut self, index: c_int, depth: usize) -> Result<(), String> {
        let state = self.state;
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("a table nested deeper than {MAX_DEPTH} levels")));
        }
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
            // An array needs every key 1..n and nothing else: a border n alone is not enough
            // ({1, 2, nil, 4, [10] = x} has border 4 and four pairs).
            let sequence_len = ffi::lua_rawlen(state, index);
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
            if sequence_len > 0 && pairs == sequence_len && in_sequence == sequence_len {
                let _ = rmp::encode::write_array_len(self.out, count);
                for at in 1..=sequence_len as i64 {
                    ffi::lua_rawgeti(state, index, at);
                    self.path.push(Step::Index(at));
                    self.value(-1, depth)?;
                    self.path.pop();
                    ffi::lua_pop(state, 1);
                }
            } else {
                let _ = rmp::encode::write_map_len(self.out, count);
                ffi::lua_pushnil(state);
                while ffi::lua_next(state, index) != 0 {
                    let key_at = ffi::lua_absindex(state, -2);
                    self.path.push(Step::KeyAt(key_at));
                    self.value(key_at, depth)?;
                    self.value(-1, depth)?;
                    self.path.pop();
                    ffi::lua_pop(state, 1);
                }
            }
            self.ancestors.pop();
        }
        Ok(())
    }

    /// "cannot send <what> (argument #2, at .items[3])"
    fn error(&self, what: &str) -> String {
        let mut message = format!("cannot send {what} (argument #{}", self.argument);
        if !self.path.is_empty() {
            message.push_str(", at ");
            for step in &self.path {
                unsafe { self.describe_step(step, &mut message) };
            }
        }
        message.push(')');
        message
    }

    unsafe fn describe_step(&self, step: &Step, out: &mut String) {
        let state = self.state;
        match *step {
            Step::Index(at) => {
                let _ = write!(out, "[{at}]");
            }
            Step::KeyAt(at) => unsafe {
                match ffi::lua_type(state, at) {
                    ffi::LUA_TSTRING => {
                        let mut len = 0usize;
                        let ptr = ffi::lua_tolstring(state, at, &mut len);
                        let key = String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len));
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
