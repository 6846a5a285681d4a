#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netlens::fuzz::npy_parse(data));
