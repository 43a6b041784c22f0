//! Reads an etcd snapshot (or, with `--skip-hash-check`, a data-dir `member/snap/db`)
//! and lists its live keys under a prefix:
//!
//!     cargo run --example read_snapshot -- FILE [PREFIX] [--skip-hash-check]

use std::path::PathBuf;

use kubeboot::snapshot::{Options, Snapshot};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let skip_hash_check = args.iter().any(|a| a == "--skip-hash-check");
    let mut positional = args.iter().filter(|a| !a.starts_with("--"));
    let file = PathBuf::from(
        positional
            .next()
            .ok_or_else(|| anyhow::anyhow!("usage: read_snapshot FILE [PREFIX]"))?,
    );
    let prefix = positional.next().map_or("", String::as_str);

    let snap = Snapshot::open(
        &file,
        &Options {
            skip_hash_check,
            status: false,
            // A command-line reader of one file: mapped, as `inspect` does.
            map_or_exit: Some(1),
        },
    )?;
    println!(
        "revision {} ({}), {} live keys",
        snap.revision(),
        snap.integrity().describe(),
        snap.len()
    );
    if let Some(rev) = snap.compact_revision() {
        println!("compacted at {rev}");
    }
    for kv in snap.prefix(prefix.as_bytes()) {
        let kv = kv?;
        println!(
            "{}  mod={} {} bytes",
            String::from_utf8_lossy(&kv.key),
            kv.mod_revision,
            kv.value.len()
        );
    }
    Ok(())
}
