#![no_main]
//! Fuzz target `kubeconfig`: see `kubeboot_fuzz::kubeconfig` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::kubeconfig(data));
