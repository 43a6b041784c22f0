//! Generates the CRI v1 `RuntimeService` server the fake kubelet serves, from the same
//! vendored `proto/cri/api.proto` (k8s.io/cri-api) kubeboot's client is generated from,
//! so the double and the client cannot drift apart. protox parses it: no system protoc.
//! Default stubs answer every call the double does not implement with `UNIMPLEMENTED`,
//! as a runtime that lacks a call does.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../../proto/cri");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", dir.display());
    let fds = protox::compile(["api.proto"], [&dir])
        .unwrap_or_else(|e| panic!("protox failed to compile {}: {e}", dir.display()));
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .build_transport(false)
        .generate_default_stubs(true)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating the CRI server: {e}"));
}
