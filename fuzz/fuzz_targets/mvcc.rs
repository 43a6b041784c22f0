#![no_main]
//! Fuzz target `mvcc`: see `kubeboot_fuzz::mvcc` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::mvcc(data));
