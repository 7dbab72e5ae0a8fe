//! The frame decoder, fed a byte stream in chunks the input chooses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tavern::fuzzing::decode_in_chunks(data));
