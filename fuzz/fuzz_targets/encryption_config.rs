#![no_main]
//! Fuzz target `encryption_config`: see `kubeboot_fuzz::encryption_config` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::encryption_config(data));
