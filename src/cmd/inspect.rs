//! `kubeboot inspect`: the operator sees what a snapshot or data-dir `db` holds — its
//! revision, whether its checksum holds, how many objects of each resource — and can
//! list keys or print one object, decoded, without any etcd binary.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::remote_read::RemoteRead;
use super::{
    Exit, ExitWith, Failure, Format, Output, render_object, render_report, unseal_failure, usage,
};
use crate::backup::catalog;
use crate::backup::crypt::{self, Identity};
use crate::backup::fetch::Fetched;
use crate::snapshot::{Options, Snapshot, Status};
use crate::{codec, registry};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// An `etcdctl snapshot save` file or a data-dir member/snap/db; or a backup in
    /// object storage, by URL: s3://bucket/prefix/NAME, or …/latest for the newest whole
    /// one (downloaded and checked first; see --remote-option).
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: PathBuf,
    /// List the live keys, one per line, sorted.
    #[arg(long, conflicts_with = "get")]
    pub keys: bool,
    /// With --keys: only keys starting with this prefix.
    #[arg(long, value_name = "PREFIX", requires = "keys", value_hint = clap::ValueHint::Other)]
    pub prefix: Option<String>,
    /// Print one value, decoded.
    #[arg(long, value_name = "KEY", value_hint = clap::ValueHint::Other)]
    pub get: Option<String>,
    /// Output format: text (default), json or yaml for the summary and --keys; yaml
    /// (default), json or raw (the stored bytes) for --get. `-w` as in etcdctl.
    #[arg(
        short,
        long,
        visible_short_alias = 'w',
        alias = "write-out",
        value_enum
    )]
    pub output: Option<InspectOutput>,
    /// Accept a file without a sha256 trailer (a raw data-dir db).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// An age identity file: FILE may then be an encrypted backup (`backup.tar.age`),
    /// whose snapshot is decrypted in memory only.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// The api-server's --etcd-prefix, for the per-resource counts.
    #[arg(long, default_value = "/registry", value_name = "PREFIX", value_hint = clap::ValueHint::Other)]
    pub etcd_prefix: String,
    #[command(flatten)]
    pub remote: RemoteRead,
}

/// Every format `inspect` knows; which ones apply depends on the mode ([`format_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectOutput {
    Text,
    Json,
    Yaml,
    Raw,
}

/// The report format of the summary and `--keys`; `raw` applies to `--get` only.
fn format_for(output: Option<InspectOutput>, what: &str) -> Result<Format, Failure> {
    match output {
        None | Some(InspectOutput::Text) => Ok(Format::Text),
        Some(InspectOutput::Json) => Ok(Format::Json),
        Some(InspectOutput::Yaml) => Ok(Format::Yaml),
        Some(InspectOutput::Raw) => Err(usage(format!(
            "-o raw applies to --get only; {what} prints text, json or yaml"
        ))),
    }
}

/// The object format of `--get`; `text` is for reports.
fn object_format(output: Option<InspectOutput>) -> Result<Output, Failure> {
    match output {
        None | Some(InspectOutput::Yaml) => Ok(Output::Yaml),
        Some(InspectOutput::Json) => Ok(Output::Json),
        Some(InspectOutput::Raw) => Ok(Output::Raw),
        Some(InspectOutput::Text) => Err(usage(
            "inspect --get prints yaml, json or raw (-o text is for the summary and --keys)",
        )),
    }
}

pub fn run(args: InspectArgs) -> Result<(), Failure> {
    // A wrong -o is refused before the file is read.
    let mode = if args.keys {
        Mode::Keys(format_for(args.output, "--keys")?)
    } else if args.get.is_some() {
        Mode::Get(object_format(args.output)?)
    } else {
        Mode::Summary(format_for(args.output, "the summary")?)
    };
    let opts = Options {
        skip_hash_check: args.skip_hash_check,
        // The summary shows etcdctl's status: walked beside the parse, not after it.
        status: matches!(mode, Mode::Summary(_)),
        // One file read and the process exits: mapped (see Options::map_or_exit).
        map_or_exit: Some(Exit::NoSource as i32),
    };
    let fetched = args
        .remote
        .fetch_if_url(&args.file, &std::env::temp_dir(), Exit::NoSource)?;
    let path = fetched
        .as_ref()
        .map_or_else(|| args.file.clone(), Fetched::file);
    let snap = open_snapshot(&path, &args, &opts)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match mode {
        Mode::Keys(format) => {
            let prefix = args.prefix.as_deref().unwrap_or("").as_bytes();
            // Keys only: read from the index, no value decoded.
            let keys = snap.sizes(prefix).map(|(key, _)| printable_key(key));
            if format == Format::Text {
                for key in keys {
                    out.write_all(key.as_bytes())?;
                    out.write_all(b"\n")?;
                }
            } else {
                let keys: Vec<String> = keys.collect();
                out.write_all(render_report(&keys, format)?.as_bytes())?;
            }
        }
        Mode::Get(output) => {
            let key = args.get.as_deref().unwrap_or_default();
            let kv = snap.get(key.as_bytes()).exit_with(Exit::NoSource)?;
            let kv = kv.ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: key {key:?} not found (or deleted)",
                    args.file.display()
                )
            })?;
            if output == Output::Raw {
                out.write_all(&kv.value)?;
            } else {
                let decoded = codec::decode(key, &kv.value)?;
                out.write_all(render_object(&decoded.object, output)?.as_bytes())?;
            }
        }
        Mode::Summary(format) => {
            let summary = summarize(&args, &snap)?;
            if format == Format::Text {
                write_summary(&mut out, &summary)?;
            } else {
                out.write_all(render_report(&summary, format)?.as_bytes())?;
            }
        }
    }
    out.flush()
        .with_context(|| "writing to stdout".to_string())?;
    Ok(())
}

/// The snapshot at `path` (FILE, or its download), or the one inside it when it is an
/// encrypted backup. Messages name FILE as the operator gave it.
fn open_snapshot(path: &Path, args: &InspectArgs, opts: &Options) -> Result<Snapshot, Failure> {
    // A pipe would lose its head to the encryption check below and then read as a
    // damaged file: refused, naming what it is.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a pipe or a device)"
        };
        return Err(usage(format!(
            "{}: {what}; inspect reads a snapshot file (save a stream to a file first)",
            args.file.display()
        )));
    }
    // A file that cannot be opened is reported by the snapshot reader, as before.
    if !crypt::is_age_file(path).unwrap_or(false) {
        return Snapshot::open(path, opts).exit_with(Exit::NoSource);
    }
    let file = args.file.display();
    let Some(identity) = &args.identity else {
        return Err(usage(format!(
            "{file}: encrypted with age; give --identity FILE"
        )));
    };
    let identity = Identity::load(identity).exit_with(Exit::Usage)?;
    let bytes = crypt::read_member(path, &identity, catalog::SNAPSHOT).map_err(unseal_failure)?;
    let name = format!("{file}: {}", catalog::SNAPSHOT);
    Snapshot::from_bytes(&name, bytes, opts).exit_with(Exit::NoSource)
}

enum Mode {
    Keys(Format),
    Get(Output),
    Summary(Format),
}

/// The summary, in the JSON shape documented in docs/cli.md.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    file: String,
    /// Bytes on disk, trailer included.
    size: u64,
    integrity: &'static str,
    revision: i64,
    compact_revision: Option<i64>,
    /// The latest value of each key that is not deleted.
    live_keys: usize,
    value_bytes: u64,
    /// Live keys per resource under --etcd-prefix.
    resources: BTreeMap<String, u64>,
    /// What `etcdctl snapshot status -w json` prints for the same file.
    etcdctl: Status,
}

fn summarize(args: &InspectArgs, snap: &Snapshot) -> anyhow::Result<Summary> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    for (key, value_len) in snap.sizes(b"") {
        bytes += value_len;
        let key = String::from_utf8_lossy(key);
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
    let etcdctl = snap
        .status()
        .with_context(|| format!("{}: walking every bucket", args.file.display()))?;
    Ok(Summary {
        file: args.file.display().to_string(),
        size: snap.file_len(),
        integrity: snap.integrity().describe(),
        revision: snap.revision(),
        compact_revision: snap.compact_revision(),
        live_keys: snap.len(),
        value_bytes: bytes,
        resources: counts,
        etcdctl,
    })
}

fn write_summary(out: &mut impl Write, s: &Summary) -> anyhow::Result<()> {
    writeln!(out, "file:        {} ({} bytes)", s.file, s.size)?;
    writeln!(out, "revision:    {}", s.revision)?;
    match s.compact_revision {
        Some(rev) => writeln!(out, "compacted:   {rev}")?,
        None => writeln!(out, "compacted:   never")?,
    }
    writeln!(out, "integrity:   {}", s.integrity)?;
    let e = &s.etcdctl;
    writeln!(
        out,
        "hash:        {:x} (etcdctl snapshot status's HASH)",
        e.hash
    )?;
    writeln!(
        out,
        "total keys:  {} (every revision and etcd's own records; etcdctl's TOTAL KEYS)",
        e.total_key
    )?;
    writeln!(
        out,
        "total size:  {} bytes (bbolt's pages in use; etcdctl's TOTAL SIZE)",
        e.total_size
    )?;
    if let Some(v) = &e.version {
        writeln!(out, "version:     {v}")?;
    }
    writeln!(
        out,
        "live keys:   {} (the latest value of each key not deleted; {} value bytes)",
        s.live_keys, s.value_bytes
    )?;
    let width = s.resources.keys().map(String::len).max().unwrap_or(0);
    for (resource, n) in &s.resources {
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
