//! Compiles Kubernetes' `.proto` files into `FileDescriptorSet`s for the storage codec.
//!
//! Why at build time: the codec decodes every built-in kind generically, from descriptors, instead
//! of carrying ~1300 generated types. protox is a pure-Rust protoc, so no system tool is needed.
//! `source_code_info` is dropped to keep the embedded blobs small.
//!
//! Where the `.proto` files come from: `proto/<name>/`, copied unmodified from kubernetes/api,
//! apimachinery, apiextensions-apiserver and kube-aggregator by `scripts/refresh-protos`, with their
//! license and the commits they came from (`proto/<name>/SOURCE.md`). The choices weighed:
//! - finding a registry crate that ships them (`k8s-rs-pb`) through `cargo metadata --offline`
//!   broke every first build whose cache had not seen the dev-dependencies, since metadata resolves
//!   the whole graph; without `--offline` it would need the network inside a build script, and no
//!   crate ships protos newer than Kubernetes 1.35;
//! - reading a dependency's `links` metadata (`DEP_*` variables) needs a crate that declares
//!   `links` and exports its path; none does;
//! - keeping the files in the repo needs nothing at build time, pins them exactly, and lets the
//!   project follow Kubernetes as it moves. That is the one kept.
//!
//! The CRI v1 `api.proto` (`proto/cri/`, from k8s.io/cri-api) is compiled apart, into the
//! `RuntimeService` client `src/cri` uses (messages and client only; the fake kubelet's test
//! kit compiles the server side of the same file).
//!
//! Two sets are compiled: the newest release (the codec's first choice) and kubernetes/api's HEAD,
//! which the codec falls back to only for a value that carries fields the release does not know
//! (a pre-release cluster).

use std::env;
use std::path::{Path, PathBuf};

/// `proto/<dir>` → `OUT_DIR/<out>`, and the variable naming its source for the codec's reports.
const SETS: &[(&str, &str, &str)] = &[
    ("v1.36", "k8s.fds", "KUBEBOOT_PROTOS_RELEASE"),
    ("head", "k8s-head.fds", "KUBEBOOT_PROTOS_HEAD"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (dir, out, var) in SETS {
        let root = manifest_dir.join("proto").join(dir);
        println!("cargo:rustc-env={var}={}", source_of(&root));
        let fds = compile(&root);
        let path = out_dir.join(out);
        std::fs::write(&path, fds).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    compile_cri(&manifest_dir.join("proto").join("cri"));
}

/// `proto/cri/api.proto` → `OUT_DIR/runtime.v1.rs`: prost messages and the tonic client.
fn compile_cri(root: &Path) {
    let fds = protox::compile(["api.proto"], [root])
        .unwrap_or_else(|e| panic!("protox failed to compile {}: {e}", root.display()));
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating the CRI client: {e}"));
}

fn compile(root: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    collect_protos(root, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no .proto files under {}",
        root.display()
    );
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("proto file is under the proto root")
                .to_path_buf()
        })
        .collect();
    let mut compiler = protox::Compiler::new([root]).expect("protox: bad include dir");
    compiler.include_imports(true).include_source_info(false);
    compiler
        .open_files(&relative)
        .unwrap_or_else(|e| panic!("protox failed to compile {}: {e}", root.display()));
    compiler.encode_file_descriptor_set()
}

/// `k8s.io/api <ref> (<commit>)` from the first row of `SOURCE.md`, which `scripts/refresh-protos`
/// writes as `| k8s.io/api | <ref> | <commit> | <files> |`.
fn source_of(root: &Path) -> String {
    let path = root.join("SOURCE.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .find_map(|line| {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            match cols.as_slice() {
                ["", "k8s.io/api", reference, commit, ..] => {
                    Some(format!("k8s.io/api {reference} ({})", commit.get(..12)?))
                }
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("{} has no k8s.io/api row", path.display()))
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("reading a directory entry").path();
        if path.is_dir() {
            collect_protos(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}
