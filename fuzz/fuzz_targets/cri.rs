#![no_main]
//! Fuzz target `cri`: see `kubeboot_fuzz::cri` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::cri(data));
