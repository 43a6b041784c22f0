#![no_main]
//! Fuzz target `codec`: see `kubeboot_fuzz::codec` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::codec(data));
