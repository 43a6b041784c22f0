//! Decodes one etcd value to the JSON the api-server would serve.
//!
//! ```text
//! etcdctl get /registry/pods/kube-system/x --print-value-only > pod.bin
//! cargo run --example decode_value -- pod.bin
//! ```
//! With no argument it decodes the auger fixture pod (`tests/data/auger`).

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/auger/storage/pod.bin")
        });
    let bytes = std::fs::read(&path)?;
    let name = path.display().to_string();

    let started = Instant::now();
    // `etcdctl --print-value-only` appends one newline; decode_printed accepts it.
    let decoded = kubeboot::codec::decode_printed(&name, &bytes)?;
    let first = started.elapsed();
    // The first call also builds the descriptor pool; time a warm one as well.
    let started = Instant::now();
    kubeboot::codec::decode_printed(&name, &bytes)?;
    let warm = started.elapsed();

    println!("{}", serde_json::to_string_pretty(&decoded.object)?);
    eprintln!(
        "{name}: {:?}, {} bytes, decoded in {first:?} (first call), {warm:?} (warm)",
        decoded.format,
        bytes.len()
    );
    for field in &decoded.unknown_fields {
        eprintln!(
            "warning: {name}: unknown protobuf field {field} (unknown to the v1.35 protos: a newer cluster, or a removed field)"
        );
    }
    Ok(())
}
