//! Any payload decodes, or fails cleanly, within the documented memory
//! bound (`luna::codec::MAX_BYTES_PER_INPUT_BYTE`), leaving the stack as promised.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| luna::codec::checks::msgpack_decode(data));
