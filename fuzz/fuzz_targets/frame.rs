//! Frames cut from a stream's bytes: lengths within the input and the
//! package size, bodies that write back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| luna::codec::checks::frame(data));
