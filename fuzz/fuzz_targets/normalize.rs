//! See `siemgate::fuzzing::normalize` for the input and the properties checked.

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| siemgate::fuzzing::normalize(data));
