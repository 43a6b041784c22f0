//! `kubeboot inspect`: the operator sees what a snapshot or data-dir `db` holds — its
//! revision, whether its checksum holds, how many objects of each resource — and can
//! list keys or print one object, decoded, without any etcd binary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Exit, ExitWith, Failure, Output, render_object, usage};
use crate::snapshot::{Options, Snapshot};
use crate::{codec, registry};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An `etcdctl snapshot save` file or a data-dir member/snap/db.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// List the live keys, one per line, sorted.
    #[arg(long, conflicts_with = "get")]
    pub keys: bool,
    /// With --keys: only keys starting with this prefix.
    #[arg(long, value_name = "PREFIX", requires = "keys")]
    pub prefix: Option<String>,
    /// Print one value, decoded.
    #[arg(long, value_name = "KEY")]
    pub get: Option<String>,
    /// Output format for --get.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    /// Accept a file without a sha256 trailer (a raw data-dir db).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// The api-server's --etcd-prefix, for the per-resource counts.
    #[arg(long, default_value = "/registry", value_name = "PREFIX")]
    pub etcd_prefix: String,
}

pub fn run(args: InspectArgs) -> Result<(), Failure> {
    let opts = Options {
        skip_hash_check: args.skip_hash_check,
    };
    let snap = Snapshot::open(&args.file, &opts).exit_with(Exit::NoSource)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.keys {
        let prefix = args.prefix.as_deref().unwrap_or("").as_bytes();
        for kv in snap.prefix(prefix) {
            out.write_all(printable_key(&kv.key).as_bytes())?;
            out.write_all(b"\n")?;
        }
    } else if let Some(key) = &args.get {
        let kv = snap.get(key.as_bytes()).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: key {key:?} not found (or deleted)",
                args.file.display()
            )
        })?;
        if args.output == Output::Raw {
            out.write_all(&kv.value)?;
        } else {
            let decoded = codec::decode(key, &kv.value)?;
            out.write_all(render_object(&decoded.object, args.output)?.as_bytes())?;
        }
    } else {
        if args.output != Output::Yaml {
            return Err(usage("-o applies to --get only"));
        }
        write_summary(&mut out, &args, &snap)?;
    }
    out.flush()
        .with_context(|| "writing to stdout".to_string())?;
    Ok(())
}

fn write_summary(out: &mut impl Write, args: &InspectArgs, snap: &Snapshot) -> anyhow::Result<()> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    for kv in snap.prefix(b"") {
        bytes += kv.value.len() as u64;
        let key = String::from_utf8_lossy(&kv.key);
        let resource =
            registry::resource_of_key(&args.etcd_prefix, &key).unwrap_or("(outside the prefix)");
        // Counted by &str first: a million keys share a few dozen resources.
        match counts.get_mut(resource) {
            Some(n) => *n += 1,
            None => {
                counts.insert(resource.to_string(), 1);
            }
        }
    }
    writeln!(out, "file:       {}", args.file.display())?;
    writeln!(out, "revision:   {}", snap.revision())?;
    match snap.compact_revision() {
        Some(rev) => writeln!(out, "compacted:  {rev}")?,
        None => writeln!(out, "compacted:  never")?,
    }
    writeln!(out, "integrity:  {}", snap.integrity().describe())?;
    writeln!(out, "keys:       {} ({bytes} value bytes)", snap.len())?;
    let width = counts.keys().map(String::len).max().unwrap_or(0);
    for (resource, n) in &counts {
        writeln!(out, "  {resource:<width$}  {n}")?;
    }
    Ok(())
}

/// Keys are bytes; print them as text, escaping anything that would garble a terminal.
fn printable_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => key.escape_ascii().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::printable_key;

    #[test]
    fn keys_are_escaped_only_when_needed() {
        assert_eq!(printable_key(b"/registry/pods/a"), "/registry/pods/a");
        assert_eq!(printable_key(b"a\nb"), "a\\nb");
        assert_eq!(printable_key(b"\xff\x00"), "\\xff\\x00");
    }
}
