//! libFuzzer target: the sample driver's IOCTL dispatcher on the emulated kernel (see
//! `ntpool_fuzz` for the input format and what counts as a crash).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ntpool_fuzz::run(data));
