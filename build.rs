//! Compiles Kubernetes' `.proto` files into one `FileDescriptorSet` for the storage codec.
//!
//! Why at build time: the codec decodes every built-in kind generically, from descriptors, instead of
//! carrying ~1300 generated types. The `.proto` files are data from the build-dependency
//! `k8s-rs-pb` (default features off, so its Rust compiles to nothing); protox is a pure-Rust
//! protoc, so no system tool is needed. `source_code_info` is dropped to keep the embedded blob small
//! (see `../shared/codec-notes.md`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes minor version whose protos we compile (a directory of `k8s-rs-pb`).
const PROTO_DIR: &str = "src/v1_35";

fn main() {
    // The protos live in a registry crate pinned with `=`; they cannot change under us.
    println!("cargo:rerun-if-changed=build.rs");

    let root = k8s_rs_pb_dir().join(PROTO_DIR);
    let mut files = Vec::new();
    collect_protos(&root, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no .proto files under {}",
        root.display()
    );
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&root)
                .expect("proto file is under the proto root")
                .to_path_buf()
        })
        .collect();

    let mut compiler = protox::Compiler::new([&root]).expect("protox: bad include dir");
    compiler.include_imports(true).include_source_info(false);
    compiler
        .open_files(&relative)
        .unwrap_or_else(|e| panic!("protox failed to compile {}: {e}", root.display()));
    let fds = compiler.encode_file_descriptor_set();

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("k8s.fds");
    std::fs::write(&out, fds).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// Finds the source dir of the `k8s-rs-pb` build-dependency through `cargo metadata`, so the
/// build works with any registry location or vendoring.
fn k8s_rs_pb_dir() -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&manifest_dir)
        .args(["metadata", "--format-version", "1", "--offline"]);
    if let Some(host) = env::var_os("HOST") {
        cmd.arg("--filter-platform").arg(host);
    }
    let output = cmd.output().expect("running `cargo metadata`");
    assert!(
        output.status.success(),
        "`cargo metadata` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("`cargo metadata` prints UTF-8");
    manifest_paths(&text)
        .into_iter()
        .filter_map(|p| Path::new(&p).parent().map(Path::to_path_buf))
        .find(|dir| {
            let is_pkg = dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("k8s-rs-pb"));
            is_pkg && dir.join(PROTO_DIR).is_dir()
        })
        .expect("`cargo metadata` lists no k8s-rs-pb package with src/v1_35 (build-dependency k8s-rs-pb =0.5.0)")
}

/// Every `"manifest_path":"…"` value in `cargo metadata` JSON. Build scripts have no JSON parser
/// among our build-dependencies; this key only ever holds a plain string.
fn manifest_paths(json: &str) -> Vec<String> {
    const KEY: &str = "\"manifest_path\":\"";
    let mut out = Vec::new();
    let mut rest = json;
    while let Some(start) = rest.find(KEY) {
        rest = &rest[start + KEY.len()..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = i + 1;
                    break;
                }
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                other => value.push(other),
            }
        }
        rest = &rest[end..];
        out.push(value);
    }
    out
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
