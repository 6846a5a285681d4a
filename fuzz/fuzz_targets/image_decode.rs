#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| netlens::fuzz::image_decode(data));
