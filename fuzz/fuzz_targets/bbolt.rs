#![no_main]
//! Fuzz target `bbolt`: see `kubeboot_fuzz::bbolt` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::bbolt(data));
