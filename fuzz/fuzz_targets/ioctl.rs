//! libFuzzer target: the sample driver's IOCTL dispatcher on the emulated kernel (see
//! `ntpool_fuzz` for the input format, the mutator and what counts as a crash).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ntpool_fuzz::run(data));

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    ntpool_fuzz::mutate(data, size, max_size, seed, libfuzzer_sys::fuzzer_mutate)
});
