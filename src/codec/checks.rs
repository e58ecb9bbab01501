//! Invariant checks on untrusted input, shared by the fuzz targets in
//! `fuzz/` and the corpus replay test (`tests/corpus.rs`). Each check takes
//! arbitrary bytes and panics when the code under test breaks a promise:
//! a memory bound, the Lua stack discipline, a round trip, a frame layout.
//! A clean rejection of bad input is not a failure.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};
use mlua::{Lua, LuaOptions, StdLib};

use super::decode::{DecodeError, MAX_BYTES_PER_INPUT_BYTE, MAX_FIXED_BYTES, decode_args};
use super::encode::encode_args;
use super::resp::{self, Reply};
use crate::net::frame::{self, Body, Kind, MAX_HEADER_LEN, PREFIX_LEN};
use crate::net::next_frame;

/// Lua memory that decoding `len` bytes may take (see `decode`).
pub fn memory_allowance(len: usize) -> usize {
    MAX_BYTES_PER_INPUT_BYTE * len + MAX_FIXED_BYTES
}

/// A Lua state without libraries: the least memory of its own.
pub fn bare_lua() -> Lua {
    Lua::new_with(StdLib::NONE, LuaOptions::default()).expect("a Lua state")
}

/// Runs `f` in a protected call with the Lua allocator limited to `limit`
/// bytes beyond what is in use now. `Err` when an allocation passed it.
/// `f` must own nothing with a destructor while it calls Lua: a memory
/// error leaves it by `longjmp`.
pub fn with_memory_limit(lua: &Lua, limit: usize, f: impl FnOnce(*mut lua_State)) -> Result<(), String> {
    let used = lua.used_memory();
    lua.set_memory_limit(used + limit).expect("a memory limit");
    // SAFETY: `f` follows the stack discipline of a protected C call.
    let result = unsafe { lua.exec_raw::<()>((), f) };
    lua.set_memory_limit(0).expect("no memory limit");
    result.map_err(|error| error.to_string())
}

/// Decodes `payload` on a fresh state limited to [`memory_allowance`];
/// returns what the decoder said, or `Err` naming the bound it passed.
/// Panics when the stack is not left as promised.
pub fn decode_bounded(payload: &[u8]) -> Result<Result<c_int, DecodeError>, String> {
    let lua = bare_lua();
    decode_bounded_on(&lua, payload, memory_allowance(payload.len()))
}

/// [`decode_bounded`] on a given state with a given allowance.
pub fn decode_bounded_on(lua: &Lua, payload: &[u8], allowance: usize) -> Result<Result<c_int, DecodeError>, String> {
    let mut outcome = None;
    let mut stack = (0, 0);
    // SAFETY: with_memory_limit runs this in a protected call; it owns
    // nothing and leaves the stack as it found it.
    let result = with_memory_limit(lua, allowance, |state| unsafe {
        let top = ffi::lua_gettop(state);
        let decoded = decode_args(state, payload);
        stack = (top, ffi::lua_gettop(state));
        outcome = Some(decoded);
        ffi::lua_settop(state, top);
    });
    if let Err(error) = result {
        return Err(format!(
            "decoding {} bytes took more than {allowance} bytes of Lua memory ({error})",
            payload.len()
        ));
    }
    let outcome = outcome.expect("the decoder returned");
    let pushed: c_int = outcome.unwrap_or_default();
    assert_eq!(
        stack.1,
        stack.0 + pushed,
        "the decoder pushes exactly its values ({outcome:?})"
    );
    Ok(outcome)
}

/// The decoder's promises on any bytes: within the memory bound, stack as promised.
pub fn msgpack_decode(payload: &[u8]) {
    if let Err(error) = decode_bounded(payload) {
        panic!("{error}");
    }
}

/// Decodes `payload` then encodes what it pushed; `None` if it does not decode.
fn decode_then_encode(lua: &Lua, payload: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let mut out = Vec::new();
    let mut outcome = None;
    // SAFETY: the closure keeps the stack balanced and owns nothing; `out` lives outside.
    let result = unsafe {
        lua.exec_raw::<()>((), |state| {
            let top = ffi::lua_gettop(state);
            if let Ok(count) = decode_args(state, payload) {
                outcome = Some(encode_args(state, top + 1, top + count, &mut out));
            }
            ffi::lua_settop(state, top);
        })
    };
    result.expect("no Lua error without a memory limit");
    outcome.map(|encoded| encoded.map(|()| out))
}

/// Decode -> encode -> decode -> encode: the values survive. The bytes are
/// compared with map entries sorted, as Lua does not keep their order.
pub fn msgpack_roundtrip(payload: &[u8]) {
    let lua = bare_lua();
    let Some(first) = decode_then_encode(&lua, payload) else {
        return;
    };
    let first = first.unwrap_or_else(|error| panic!("decoded values must encode: {error}"));
    let second = decode_then_encode(&lua, &first)
        .expect("what luna writes, luna reads")
        .unwrap_or_else(|error| panic!("decoded values must encode: {error}"));
    assert_eq!(canonical(&first), canonical(&second), "a round trip changed the values");
}

/// `bytes` (one MessagePack value) with every map's entries sorted.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    fn sort(value: &mut rmpv::Value) {
        match value {
            rmpv::Value::Array(items) => items.iter_mut().for_each(sort),
            rmpv::Value::Map(entries) => {
                let mut keyed: Vec<(Vec<u8>, (rmpv::Value, rmpv::Value))> = entries
                    .drain(..)
                    .map(|(mut key, mut item)| {
                        sort(&mut key);
                        sort(&mut item);
                        let mut order = Vec::new();
                        rmpv::encode::write_value(&mut order, &key).expect("write to a Vec");
                        rmpv::encode::write_value(&mut order, &item).expect("write to a Vec");
                        (order, (key, item))
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                entries.extend(keyed.into_iter().map(|(_, entry)| entry));
            }
            _ => {}
        }
    }
    let mut value = rmpv::decode::read_value(&mut &bytes[..]).expect("luna writes MessagePack");
    sort(&mut value);
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &value).expect("write to a Vec");
    out
}

/// Largest reply the RESP check accepts (a package size).
pub const RESP_MAX_LEN: usize = 1 << 20;

/// Runs the RESP parser on `bytes` within [`memory_allowance`]; returns its
/// answer and the count of values it pushed.
pub fn resp_bounded(lua: &Lua, bytes: &[u8], max_len: usize) -> (Result<Reply, String>, c_int) {
    let mut outcome = None;
    let mut pushed = 0;
    // SAFETY: with_memory_limit runs this in a protected call; it owns
    // nothing and leaves the stack as it found it.
    let result = with_memory_limit(lua, memory_allowance(bytes.len()), |state| unsafe {
        let top = ffi::lua_gettop(state);
        outcome = Some(resp::push_reply(state, bytes, max_len));
        pushed = ffi::lua_gettop(state) - top;
        ffi::lua_settop(state, top);
    });
    if let Err(error) = result {
        panic!(
            "a reply of {} bytes took more than {} bytes of Lua memory ({error})",
            bytes.len(),
            memory_allowance(bytes.len())
        );
    }
    (outcome.expect("the parser returned"), pushed)
}

/// The RESP parser's promises: within the memory bound, `value, err` pushed
/// for a complete reply and nothing else, a complete reply found again in
/// exactly its own bytes and not in fewer, an error stays an error.
pub fn resp(bytes: &[u8]) {
    let lua = bare_lua();
    let (outcome, pushed) = resp_bounded(&lua, bytes, RESP_MAX_LEN);
    match outcome {
        Ok(Reply::Pushed(len)) => {
            assert_eq!(pushed, 2, "a reply pushes value, err");
            assert!(len > 0 && len <= bytes.len(), "reply length {len} of {}", bytes.len());
            assert_eq!(
                resp_bounded(&lua, &bytes[..len], RESP_MAX_LEN).0,
                Ok(Reply::Pushed(len))
            );
            assert_eq!(
                resp_bounded(&lua, &bytes[..len - 1], RESP_MAX_LEN).0,
                Ok(Reply::Incomplete)
            );
        }
        Ok(Reply::Incomplete) => assert_eq!(pushed, 0, "nothing is pushed for an incomplete reply"),
        Err(error) => {
            assert_eq!(pushed, 0, "nothing is pushed for a bad reply");
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(b"\r\n:1\r\n");
            assert!(
                resp_bounded(&lua, &longer, RESP_MAX_LEN).0.is_err(),
                "more bytes cannot mend a bad reply ({error})"
            );
        }
    }
}

/// The frame parser's promises, cutting frames from `bytes` as a stream's
/// reader does (the first byte picks the package size, to reach its limit):
/// a frame is never longer than the bytes nor the size allows, and writing
/// the parsed body again gives back its bytes.
pub fn frame(bytes: &[u8]) {
    let Some((&size_byte, data)) = bytes.split_first() else {
        return;
    };
    let package_size = usize::from(size_byte) * 16;
    let mut consumed = 0;
    while consumed < data.len() {
        let rest = &data[consumed..];
        match next_frame(rest, package_size) {
            Ok(None) => {
                assert_eq!(frame::complete_len(rest, package_size), Ok(None));
                break;
            }
            Ok(Some((body, len))) => {
                assert!(
                    len > PREFIX_LEN && len <= rest.len(),
                    "frame of {len} in {}",
                    rest.len()
                );
                assert!(
                    len - PREFIX_LEN <= package_size + MAX_HEADER_LEN,
                    "frame of {len} passed the size"
                );
                check_body(&rest[..len], &body);
                consumed += len;
            }
            Err(_) => break,
        }
    }
}

/// Writes `body` again and compares with the frame it came from.
fn check_body(original: &[u8], body: &Body<'_>) {
    let mut again = Vec::new();
    // Bytes of the original compared; flags bits other than "reply" are ignored.
    let mut compared = original.to_vec();
    match *body {
        Body::Call(payload) => {
            frame::push_with_payload(&mut again, Kind::Call, payload);
        }
        Body::Deliver(payload) => {
            frame::push_with_payload(&mut again, Kind::Deliver, payload);
        }
        Body::Forward(route, payload) => {
            let start = frame::begin(&mut again, Kind::Forward);
            frame::push_route(&mut again, &route);
            again.extend_from_slice(payload);
            frame::finish(&mut again, start);
            compared[PREFIX_LEN + 2] &= 1;
        }
        Body::ForwardError(failure, route, payload) => {
            frame::push_forward_error(&mut again, failure, &route, payload);
            compared[PREFIX_LEN + 3] &= 1;
        }
        Body::Cancel(session) => {
            frame::push_cancel(&mut again, session);
            // Bytes after the session are ignored.
            compared.truncate(again.len());
            compared[..PREFIX_LEN].copy_from_slice(&again[..PREFIX_LEN]);
        }
        Body::Routed(session, ids) => {
            assert_eq!(ids.len() % 4, 0, "whole service ids");
            let ids = ids
                .chunks_exact(4)
                .map(|id| u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
            frame::push_routed(&mut again, session, ids);
        }
        Body::Publish { retain, topic, payload } => {
            let start = frame::begin(&mut again, Kind::Publish);
            frame::push_publish_header(&mut again, retain, topic);
            again.extend_from_slice(payload);
            frame::finish(&mut again, start);
            compared[PREFIX_LEN + 1] &= 1;
        }
        Body::Handshake(whole) => {
            // The body as it came (kind byte first): the handshake parses it itself.
            let start = again.len();
            again.extend_from_slice(&[0; PREFIX_LEN]);
            again.extend_from_slice(whole);
            frame::finish(&mut again, start);
        }
    }
    assert_eq!(again, compared, "{body:?} written again");
}
