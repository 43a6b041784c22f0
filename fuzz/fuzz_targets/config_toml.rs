#![no_main]
//! Fuzz target `config_toml`: see `kubeboot_fuzz::config_toml` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::config_toml(data));
