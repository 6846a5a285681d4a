#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netlens::fuzz::model_load(data));
