//! The codec on a real Lua state, without sockets.

use std::ffi::c_int;

use mlua::Lua;
use mlua::ffi::{self, lua_State};

use super::{decode_args, encode_args};

fn with_state(f: impl FnOnce(*mut lua_State)) {
    let lua = Lua::new();
    // SAFETY: the closure follows the stack discipline of each test.
    unsafe { lua.exec_raw::<()>((), f).unwrap() };
}

/// Runs a chunk that returns values onto the stack; returns how many.
unsafe fn push_chunk(state: *mut lua_State, code: &str) -> c_int {
    unsafe {
        let top = ffi::lua_gettop(state);
        assert_eq!(
            ffi::luaL_loadbufferx(state, code.as_ptr().cast(), code.len(), c"test".as_ptr(), c"t".as_ptr()),
            0
        );
        assert_eq!(ffi::lua_pcall(state, 0, ffi::LUA_MULTRET, 0), 0);
        ffi::lua_gettop(state) - top
    }
}

fn encode_chunk(code: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut result = Ok(());
    with_state(|state| unsafe {
        let count = push_chunk(state, code);
        let top = ffi::lua_gettop(state);
        result = encode_args(state, top - count + 1, top, &mut out);
        assert_eq!(ffi::lua_gettop(state), top, "encoding leaves the stack as it was");
    });
    result.map(|()| out)
}

#[test]
fn known_encodings() {
    assert_eq!(
        encode_chunk("return 'echo', 1, 'hello'").unwrap(),
        b"\x93\xa4echo\x01\xa5hello"
    );
    assert_eq!(encode_chunk("return 1.0").unwrap(), b"\x91\xcb\x3f\xf0\0\0\0\0\0\0");
    assert_eq!(
        encode_chunk("return -1, 300, nil, true").unwrap(),
        b"\x94\xff\xcd\x01\x2c\xc0\xc3"
    );
    assert_eq!(encode_chunk("return {}").unwrap(), b"\x91\x80");
    assert_eq!(encode_chunk("return {1, 2}").unwrap(), b"\x91\x92\x01\x02");
    assert_eq!(encode_chunk("return {x = 1}").unwrap(), b"\x91\x81\xa1x\x01");
    assert_eq!(encode_chunk("return '\\255'").unwrap(), b"\x91\xc4\x01\xff");
    assert_eq!(encode_chunk("").unwrap(), b"\x90");
}

#[test]
fn holed_and_mixed_tables_are_maps() {
    // Border 4 with four pairs, but key 3 is missing: must not become an array.
    let holed = encode_chunk("return {1, 2, nil, 4, [10] = 10}").unwrap();
    assert_eq!(holed[1], 0x84, "a map of 4 entries");
    let mixed = encode_chunk("return {1, 2, n = 2}").unwrap();
    assert_eq!(mixed[1], 0x83);
}

#[test]
fn unsendable_values_name_what_and_where() {
    let err = encode_chunk("return 1, {a = {1, print}}").unwrap_err();
    assert_eq!(err, "cannot send a function (argument #2, at .a[2])");
    let err = encode_chunk("local t = {} t[{}] = coroutine.create(print) return t").unwrap_err();
    assert!(
        err.starts_with("cannot send a thread (argument #1, at [<table key>]"),
        "{err}"
    );
    let err = encode_chunk("local t = {} t['bad key'] = t return t").unwrap_err();
    assert!(err.contains("cycle") && err.contains("[\"bad key\"]"), "{err}");
}

#[test]
fn depth_limit_is_32_levels() {
    let nest = |levels: usize| format!("local t = 1 for _ = 1, {levels} do t = {{t}} end return t");
    assert!(encode_chunk(&nest(32)).is_ok());
    assert!(encode_chunk(&nest(33)).unwrap_err().contains("deeper than 32"));
}

/// Decodes `bytes`; on success returns the values re-encoded.
fn decode_then_encode(bytes: &[u8]) -> Result<Vec<u8>, super::DecodeError> {
    let mut result = Ok(Vec::new());
    with_state(|state| unsafe {
        let top = ffi::lua_gettop(state);
        match decode_args(state, bytes) {
            Ok(count) => {
                assert_eq!(ffi::lua_gettop(state), top + count);
                let mut out = Vec::new();
                encode_args(state, top + 1, top + count, &mut out).unwrap();
                result = Ok(out);
            }
            Err(error) => {
                assert_eq!(
                    ffi::lua_gettop(state),
                    top,
                    "a failed decode leaves the stack as it was"
                );
                result = Err(error);
            }
        }
    });
    result
}

#[test]
fn decode_round_trips_canonical_bytes() {
    for code in [
        "return 'echo', 1, 'hello'",
        "return nil, {1, {2, {3}}}, {k = {v = -0.5}}, math.maxinteger, math.mininteger",
        "return '\\0\\1\\255', 1e300, false",
    ] {
        let bytes = encode_chunk(code).unwrap();
        assert_eq!(decode_then_encode(&bytes).unwrap(), bytes, "{code}");
    }
}

#[test]
fn decode_accepts_other_encoders_forms() {
    // float32, uint64 above i64::MAX (wraps), bin, str8 with a short string, map16
    // (the map {1: 2} is the Lua sequence {2}, so it comes back as an array).
    let bytes = b"\x95\xca\x3f\x80\x00\x00\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc4\x01x\xd9\x01y\xde\x00\x01\x01\x02";
    assert_eq!(
        decode_then_encode(bytes).unwrap(),
        b"\x95\xcb\x3f\xf0\0\0\0\0\0\0\xff\xa1x\xa1y\x91\x02"
    );
}

#[test]
fn decode_rejects_bad_input_with_a_reason() {
    let cases: [(&[u8], &str); 8] = [
        (b"", "truncated message"),
        (b"\xa1x", "message is not an array of arguments"),
        (b"\x92\x01", "truncated message"),
        (b"\x91\x01\x02", "bytes left after the message"),
        (b"\x91\xc1", "reserved marker 0xc1"),
        (b"\x91\xd4\x01\x02", "extension types are not supported"),
        (b"\x91\x81\xc0\x01", "nil map key"),
        (b"\x91\xdd\xff\xff\xff\xff", "truncated message"),
    ];
    for (bytes, reason) in cases {
        assert_eq!(decode_then_encode(bytes).unwrap_err().reason, reason, "{bytes:?}");
    }
    let mut deep = vec![0x91u8; 40];
    deep.push(1);
    assert_eq!(decode_then_encode(&deep).unwrap_err().reason, "tables nested too deep");
}

#[test]
fn decoder_survives_random_and_mutated_input() {
    let seeds = encode_chunk("return 'echo', {1, 2.5, {x = 'y', [3] = false}}, -7, ('z'):rep(40)").unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    with_state(|state| unsafe {
        let top = ffi::lua_gettop(state);
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                (0..next() % 64).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                seeds.clone()
            };
            for _ in 0..1 + next() % 4 {
                if !bytes.is_empty() {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            if let Ok(count) = decode_args(state, &bytes) {
                ffi::lua_pop(state, count);
            }
            assert_eq!(ffi::lua_gettop(state), top);
        }
    });
}
