//! Replays the checked-in fuzzing corpus (`tests/corpus/<target>/`) and the
//! attack inputs of issue 17 through the checks the fuzz targets in `fuzz/`
//! run, so every change is tried on them without a nightly toolchain.

mod common;

use std::path::Path;

use common::wire::amplification_payload;
use luna::codec::checks;

/// Every file of `tests/corpus/<target>/`, at least `min` of them.
fn corpus(target: &str, min: usize) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= min, "{}: {} files", dir.display(), files.len());
    files
}

/// Runs `check` on each input, naming the input that fails.
fn replay(inputs: &[(String, Vec<u8>)], check: fn(&[u8])) {
    for (name, bytes) in inputs {
        if let Err(panic) = std::panic::catch_unwind(|| check(bytes)) {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{name}: {text}");
        }
    }
}

fn attacks() -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    for size in [64 << 10, 4 << 20] {
        for map in [false, true] {
            inputs.push((
                format!("amplification {size} map {map}"),
                amplification_payload(size, map),
            ));
        }
    }
    inputs
}

#[test]
fn msgpack_decode_corpus_and_attacks() {
    replay(&corpus("msgpack_decode", 10), checks::msgpack_decode);
    replay(&attacks(), checks::msgpack_decode);
    for (name, payload) in attacks() {
        let outcome = checks::decode_bounded(&payload).unwrap();
        assert_eq!(outcome.unwrap_err().reason, "truncated message", "{name}");
    }
}

#[test]
fn msgpack_roundtrip_corpus() {
    replay(&corpus("msgpack_roundtrip", 10), checks::msgpack_roundtrip);
}

#[test]
fn resp_corpus_and_attacks() {
    replay(&corpus("resp", 10), checks::resp);
    let mut inputs = Vec::new();
    for levels in [31_000, 50_000] {
        let mut nested = b"*1\r\n".repeat(levels);
        nested.extend_from_slice(b":1\r\n");
        inputs.push((format!("{levels} nested arrays"), nested));
    }
    replay(&inputs, checks::resp);
    let lua = checks::bare_lua();
    for (name, reply) in &inputs {
        let (outcome, _) = checks::resp_bounded(&lua, reply, checks::RESP_MAX_LEN);
        assert_eq!(outcome.unwrap_err(), "reply nested deeper than 32 levels", "{name}");
    }
}

#[test]
fn frame_corpus() {
    replay(&corpus("frame", 10), checks::frame);
}
