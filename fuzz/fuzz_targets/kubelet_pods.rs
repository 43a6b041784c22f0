#![no_main]
//! Fuzz target `kubelet_pods`: see `kubeboot_fuzz::kubelet_pods` for what it feeds and where.
libfuzzer_sys::fuzz_target!(|data: &[u8]| kubeboot_fuzz::kubelet_pods(data));
