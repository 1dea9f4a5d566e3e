//! See `siemgate::fuzzing::spool_recover` for the input and the properties checked.

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| siemgate::fuzzing::spool_recover(data));
