#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netlens::fuzz::broden_csv(data));
