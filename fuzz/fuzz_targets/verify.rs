//! See `siemgate::fuzzing::verify` for the input and the properties checked.

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| siemgate::fuzzing::verify(data));
