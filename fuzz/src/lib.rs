//! The fuzz targets' entry points, one function per target, each feeding arbitrary
//! bytes to the parsers kubeboot runs on data it did not write: a snapshot file, etcd
//! values, an api-server's EncryptionConfiguration, a kubeconfig, `config.toml`, the
//! kubelet's `/pods` answer and the container runtime's CRI answers.
//!
//! Each function must return on every input; a panic is the bug the fuzzer looks for.
//! The same functions are the targets under `cargo fuzz` (`fuzz_targets/*.rs`) and the
//! stable replay of the committed corpora (`tests/fuzz_corpora.rs` includes this file),
//! so what CI replays is exactly what was fuzzed. Only kubeboot's own public API and
//! crates kubeboot already depends on are used here, and nothing does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use clap::CommandFactory;
use kubeboot::checkpoint::{kubelet, observe, runtime};
use kubeboot::cri::{proto, sandbox};
use kubeboot::snapshot::bbolt::{Bucket, Db};
use kubeboot::snapshot::index::Builder;
use kubeboot::snapshot::mvcc::{RevKey, StoredKv};
use kubeboot::snapshot::{Options, Snapshot, trailer};
use kubeboot::{codec, config, encryption, kubeclient};
use prost::Message;

/// The etcd key the values are decoded under (only named in errors).
const KEY: &str = "/registry/secrets/kube-system/fuzz";

/// Buckets nested deeper than this are not walked (etcd's are one level deep).
const MAX_DEPTH: usize = 4;

/// A whole snapshot file: the bbolt reader (meta pages, every bucket walked), then the
/// MVCC view on top of it (`Snapshot::from_bytes`), `status` and look-ups, and the
/// sha256 trailer check. The hash check is skipped in the parse (the fuzzer cannot
/// forge a sha256; `trailer::verify` is called on its own).
pub fn bbolt(data: &[u8]) {
    let _ = trailer::verify(data);
    if let Ok(db) = Db::open(data) {
        walk(&db, db.root(), 0);
    }
    let opts = Options {
        skip_hash_check: true,
        status: false,
        map_or_exit: None,
    };
    if let Ok(snap) = Snapshot::from_bytes("fuzz.db", data.to_vec(), &opts) {
        let _ = snap.status();
        let _ = snap.get(b"/registry/namespaces/kube-system");
        let _ = snap.prefix(b"/registry/").count();
        let _ = (snap.revision(), snap.compact_revision(), snap.file_len());
    }
}

/// Every entry of `bucket` and of the buckets under it.
fn walk(db: &Db<'_>, bucket: Bucket<'_>, depth: usize) {
    let Ok(cursor) = db.cursor(bucket) else {
        return;
    };
    let nested: Vec<Vec<u8>> = cursor
        .map_while(Result::ok)
        .filter(|e| e.is_bucket())
        .map(|e| e.key.to_vec())
        .collect();
    if depth >= MAX_DEPTH {
        return;
    }
    for name in nested {
        if let Ok(Some(child)) = db.bucket(bucket, &name) {
            walk(db, child, depth + 1);
        }
    }
}

/// etcd's MVCC records, without bbolt around them: a sequence of (revision key,
/// `mvccpb.KeyValue`) pairs, each length-prefixed (see [`mvcc_records`]), decoded the
/// way `mvcc::read` decodes bucket `key`, then indexed into the latest live view
/// (`index::Builder`) and every live key-value decoded again from the values.
pub fn mvcc(data: &[u8]) {
    let records = split_records(data);
    let body: Vec<u8> = records
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let body = prost::bytes::Bytes::from(body);
    let mut index = Builder::new(body.clone());
    let mut at = 0usize;
    for (key, value) in records {
        let place = at..at + value.len();
        at += value.len();
        let Some(rev) = RevKey::parse(key) else {
            continue;
        };
        let _ = rev.to_string();
        // Decoded from the body, as `mvcc::read` does: the key must be a slice of it.
        if let Ok(kv) = StoredKv::decode(body.slice(place.clone())) {
            let _ = index.push(place, &kv, rev.tombstone);
        }
    }
    let index = index.finish();
    for i in 0..index.len() {
        let _ = (index.get(i), index.sizes(i));
    }
    let _ = (index.find(b"/registry/pods"), index.prefix(b"/registry/"));
}

/// The input format of [`mvcc`]: each record is a big-endian u16 key length, the key,
/// a big-endian u16 value length, the value. Used to write the seed corpus.
pub fn mvcc_records(records: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        for part in [k, v] {
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.get(..usize::from(len)).unwrap_or(part));
        }
    }
    out
}

fn split_records(mut data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while let Some((k, rest)) = take(data)
        && let Some((v, rest)) = take(rest)
    {
        out.push((k, v));
        data = rest;
    }
    out
}

/// One length-prefixed part of `data`, and what follows it.
fn take(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// An etcd value: the `k8s\0` envelope and the object's protobuf, JSON, or a
/// `k8s:enc:` prefix (`codec::decode`, `decode_printed`); what decodes is encoded
/// again and decoded back (`codec::encode`), as `recover` and the tests do.
pub fn codec(data: &[u8]) {
    let _ = codec::decode_printed(KEY, data);
    if let Ok(decoded) = codec::decode(KEY, data)
        && let Ok(bytes) = codec::encode(&decoded.object)
    {
        let _ = codec::decode(KEY, &bytes);
    }
}

/// An EncryptionConfiguration (the text before the first NUL byte), and, when it
/// parses, a stored value decrypted with it (the bytes after the NUL).
pub fn encryption_config(data: &[u8]) {
    let (text, value) = match data.iter().position(|&b| b == 0) {
        Some(i) => (data.get(..i).unwrap_or_default(), data.get(i + 1..)),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(config) = encryption::EncryptionConfig::from_yaml("fuzz.yaml", text)
        && let Some(value) = value
    {
        let _ = config.decrypt(KEY, value);
    }
}

/// A kubeconfig: kube-rs' parser (what `kubeclient::from_kubeconfig` reads the file
/// with), the files its current context names, and, when it names none (so nothing is
/// read), kube-rs' own loading of its inline data (server URL, CA data, proxy URL).
pub fn kubeconfig(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(kc) = kube::config::Kubeconfig::from_yaml(text) else {
        return;
    };
    if !kubeclient::referenced_files(&kc).is_empty() {
        return;
    }
    let options = kube::config::KubeConfigOptions::default();
    let _ = futures::executor::block_on(kube::Config::from_custom_kubeconfig(kc, &options));
}

/// The CLI, built once (clap's `Command` is the same for every input).
fn cli() -> &'static clap::Command {
    static CLI: OnceLock<clap::Command> = OnceLock::new();
    CLI.get_or_init(kubeboot::cmd::Cli::command)
}

/// `config.toml`: parsed (`config::parse`), checked against every command's flags
/// (`config::check`, what `kubeboot config check` runs), and applied to a command line
/// of each command it has a table for (`config::apply`, what every run does).
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/fuzz/config.toml");
    let Ok(table) = config::parse(text, file) else {
        return;
    };
    let root = cli();
    let _ = config::check(root, &table, file);
    for name in table.keys() {
        let argv = ["kubeboot", name.as_str()].map(std::ffi::OsString::from);
        let _ = config::apply(root, &table, file, argv.to_vec());
    }
}

/// The kubelet's `/pods` body: parsed (`kubelet::parse_pod_list`), its running parents
/// (`kubelet::running_parents`) and the namespaces the checkpointer would then list.
pub fn kubelet_pods(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pods) = kubelet::parse_pod_list(text) else {
        return;
    };
    let running = kubelet::running_parents(&pods);
    let _ = observe::namespaces("kube-system", Some(&running), &BTreeMap::new());
}

/// The container runtime's answers: the bytes as a `ListPodSandboxResponse` (ready pods
/// and the running parents among them, `cri::sandbox::ready_pods`,
/// `checkpoint::runtime::running_from_sandboxes`) and as a `ListContainersResponse`
/// (`cri::sandbox::container_view`).
pub fn cri(data: &[u8]) {
    if let Ok(resp) = proto::ListPodSandboxResponse::decode(data) {
        let pods = sandbox::ready_pods(&resp.items);
        let running: BTreeSet<_> = runtime::running_from_sandboxes(&pods);
        let _ = running.len();
    }
    if let Ok(resp) = proto::ListContainersResponse::decode(data) {
        let _: Vec<_> = resp
            .containers
            .iter()
            .map(sandbox::container_view)
            .collect();
    }
}
