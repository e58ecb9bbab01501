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
///
/// # Safety
/// `state` is the state `with_state` lends, with room for the chunk's results.
unsafe fn push_chunk(state: *mut lua_State, code: &str) -> c_int {
    // SAFETY: a live state in a protected call (the caller's promise); the
    // code outlives the load, which copies it.
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
    // SAFETY: the state `with_state` lends, in a protected call; the stack is
    // left as found (checked where it matters).
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
fn values_after_a_wrappers_arguments_are_named_as_the_script_counts_them() {
    let mut result = Ok(());
    // SAFETY: the state `with_state` lends, in a protected call; the values
    // are popped by the end of the call.
    with_state(|state| unsafe {
        // A wrapper's own arguments (timeout, trace) then the script's #2 and #3.
        let count = push_chunk(state, "return 5000, nil, 'add', {ok = print}");
        let top = ffi::lua_gettop(state);
        let mut out = Vec::new();
        result = super::encode_values(state, top - count + 3, top, 2, &mut out);
        assert_eq!(ffi::lua_gettop(state), top, "encoding leaves the stack as it was");
    });
    assert_eq!(result.unwrap_err(), "cannot send a function (argument #3, at .ok)");
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
    // SAFETY: the state `with_state` lends, in a protected call; the stack is
    // left as found (checked where it matters).
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
    // SAFETY: the state `with_state` lends, in a protected call; the stack is
    // left as found (checked where it matters).
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

/// An array header for `len` elements.
fn array_header(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, len as u32).unwrap();
    out
}

/// A message of one argument: a container of `count` copies of `element`
/// (a map when `map`, with `element` as key and value... as its entries).
fn container_of(count: usize, element: &[u8], map: bool) -> Vec<u8> {
    let mut out = vec![0x91];
    if map {
        rmp::encode::write_map_len(&mut out, count as u32).unwrap();
    } else {
        out.extend(array_header(count));
    }
    for _ in 0..count {
        out.extend_from_slice(element);
    }
    out
}

/// The least Lua memory decoding `payload` needs at its peak (found by
/// bisecting the allocator's limit), and whether it decoded.
fn peak_decode_memory(payload: &[u8]) -> (usize, bool) {
    let lua = super::checks::bare_lua();
    let (mut low, mut high) = (0usize, 1usize << 30);
    let mut decoded = false;
    while low < high {
        let mid = (low + high) / 2;
        match super::checks::decode_bounded_on(&lua, payload, mid) {
            Ok(outcome) => {
                decoded = outcome.is_ok();
                high = mid;
            }
            Err(_) => low = mid + 1,
        }
        lua.gc_collect().unwrap();
    }
    (low, decoded)
}

#[test]
fn memory_factor_of_every_shape() {
    let mut shapes: Vec<(String, Vec<u8>)> = Vec::new();
    for count in [100, 1024, 1025, 1500, 3000, 60_000] {
        shapes.push((
            format!("array of {count} empty arrays"),
            container_of(count, &[0x90], false),
        ));
        shapes.push((
            format!("array of {count} empty maps"),
            container_of(count, &[0x80], false),
        ));
        shapes.push((format!("array of {count} zeros"), container_of(count, &[0x00], false)));
        shapes.push((
            format!("map of {count} empty-array pairs"),
            container_of(count, &[0x90, 0x90], true),
        ));
    }
    let mut strings = vec![0x91];
    strings.extend(array_header(60_000));
    let mut ints = strings.clone();
    let mut floats = strings.clone();
    let mut keyed = vec![0x91, 0xdf, 0, 0, 0xea, 0x60];
    for i in 0..60_000u32 {
        strings.extend_from_slice(&[0xa2, (i >> 8) as u8, i as u8]);
        rmp::encode::write_sint(&mut ints, i64::from(i) * 1_000_003).unwrap();
        rmp::encode::write_f64(&mut floats, f64::from(i) + 0.5).unwrap();
        rmp::encode::write_uint(&mut keyed, u64::from(i) + 1).unwrap();
        keyed.push(0x90);
    }
    shapes.push(("array of 60000 distinct 2-byte strings".into(), strings));
    shapes.push(("array of 60000 integers".into(), ints));
    shapes.push(("array of 60000 floats".into(), floats));
    shapes.push(("map 1..60000 -> empty arrays".into(), keyed));
    let mut long_string = vec![0x91, 0xdb, 0, 1, 0, 0];
    long_string.resize(long_string.len() + 65536, b'x');
    shapes.push(("one 64 KiB string".into(), long_string));
    let mut nested = vec![0x91; 33];
    nested.push(0);
    shapes.push(("32 nested arrays".into(), nested));
    let mut arguments = vec![0xdc, 0x1f, 0x40];
    arguments.resize(3 + 8000, 0x90);
    shapes.push(("8000 empty-array arguments".into(), arguments));
    let mut nested_wide = vec![0x91];
    for _ in 0..31 {
        nested_wide.extend_from_slice(&[0x92, 0x90]);
    }
    nested_wide.push(0x90);
    shapes.push(("31 levels, each with an empty array".into(), nested_wide));
    let mut worst: f64 = 0.0;
    for (name, payload) in &shapes {
        let (peak, decoded) = peak_decode_memory(payload);
        assert!(decoded, "{name} decodes");
        let factor = peak as f64 / payload.len() as f64;
        worst = worst.max(peak.saturating_sub(super::MAX_FIXED_BYTES) as f64 / payload.len() as f64);
        println!(
            "{name}: {} bytes -> {peak} bytes of Lua memory ({factor:.1} per byte)",
            payload.len()
        );
        assert!(
            peak <= super::checks::memory_allowance(payload.len()),
            "{name}: {peak} bytes for {} bytes of payload",
            payload.len()
        );
    }
    println!("worst factor beyond the fixed allowance: {worst:.1}");
    // The attack of issue 17 claims the same bytes at every level: rejected
    // after the second header, having reserved nothing much.
    let mut attack = vec![0x91u8];
    for _ in 0..32 {
        let left = (65536 - attack.len() - 5) as u32;
        attack.push(0xdd);
        attack.extend_from_slice(&left.to_be_bytes());
    }
    attack.resize(65536, 0);
    let (peak, decoded) = peak_decode_memory(&attack);
    assert!(!decoded);
    // One table of PREALLOCATE_MAX slots (16 KiB) at most.
    assert!(peak < 20_000, "the attack took {peak} bytes");
}

/// Pushes the first reply of `reply` and runs `check` (a chunk given
/// `value, err` as `...`) on it; returns what the chunk returns.
fn with_reply(reply: &[u8], check: &str) -> String {
    let mut text = String::new();
    // SAFETY: the state `with_state` lends, in a protected call; the stack is
    // left as found (checked where it matters).
    with_state(|state| unsafe {
        let top = ffi::lua_gettop(state);
        assert_eq!(
            ffi::luaL_loadbufferx(
                state,
                check.as_ptr().cast(),
                check.len(),
                c"check".as_ptr(),
                c"t".as_ptr()
            ),
            0
        );
        let pushed = super::resp::push_reply(state, reply, 1 << 20);
        assert_eq!(pushed, Ok(super::resp::Reply::Pushed(reply.len())));
        assert_eq!(ffi::lua_pcall(state, 2, 1, 0), 0);
        let mut len = 0;
        let ptr = ffi::lua_tolstring(state, -1, &mut len);
        text = String::from_utf8_lossy(std::slice::from_raw_parts(ptr.cast::<u8>(), len)).into_owned();
        ffi::lua_settop(state, top);
    });
    text
}

#[test]
fn redis_replies_reach_lua_as_before() {
    let pair = "local v, e = ... return tostring(v) .. ',' .. tostring(e)";
    assert_eq!(with_reply(b"+OK\r\n", pair), "OK,nil");
    assert_eq!(with_reply(b"-ERR bad\r\n", pair), "nil,ERR bad");
    assert_eq!(
        with_reply(b":-42\r\n", "local v = ... return math.type(v) .. v"),
        "integer-42"
    );
    assert_eq!(with_reply(b"$2\r\n\0\n\r\n", "local v = ... return #v"), "2");
    assert_eq!(with_reply(b"$-1\r\n", pair), "nil,nil");
    assert_eq!(with_reply(b"*-1\r\n", pair), "nil,nil");
    assert_eq!(
        with_reply(b"*0\r\n", "local v, e = ... return v.n .. tostring(e)"),
        "0nil"
    );
    assert_eq!(
        with_reply(
            b"*4\r\n$3\r\nFoo\r\n$-1\r\n*1\r\n-ERR x\r\n*2\r\n:1\r\n+b\r\n",
            "local v = ... return table.concat({v.n, v[1], tostring(v[2]), v[3].n, v[3][1].err, v[4].n, v[4][1], v[4][2]}, ' ')"
        ),
        "4 Foo nil 1 ERR x 2 1 b"
    );
}

/// Encodes the values `code` returns as a Redis command.
fn command_of(code: &str) -> Result<Vec<u8>, String> {
    let mut out = b"kept".to_vec();
    let mut result = Ok(());
    // SAFETY: the state `with_state` lends, in a protected call; the stack is
    // left as found (checked where it matters).
    with_state(|state| unsafe {
        let count = push_chunk(state, code);
        let top = ffi::lua_gettop(state);
        result = super::resp::encode_command(state, top - count + 1, top, &mut out);
    });
    result.map(|()| out)
}

#[test]
fn redis_commands_are_arrays_of_bulk_strings() {
    assert_eq!(
        command_of("return 'SET', 'k\\r\\n', 12, 1.5, -0.0").unwrap(),
        b"kept*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n$3\r\n1.5\r\n$2\r\n-0\r\n"
    );
    assert_eq!(
        command_of("return 'GET', {}").unwrap_err(),
        "cannot send a table as a redis argument (argument #2: strings and numbers only)"
    );
}
