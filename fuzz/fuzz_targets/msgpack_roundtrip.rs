//! decode -> encode -> decode -> encode keeps the values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| luna::codec::checks::msgpack_roundtrip(data));
