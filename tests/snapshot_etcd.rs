//! The snapshot reader against snapshots written by real etcd 3.4 and 3.5: every live
//! key, value and revision field must match what `etcdctl get` returned just before
//! `etcdctl snapshot save`, through many revisions per key, deletes (single and
//! range), a compaction, leases and values large enough to need overflow pages.

mod snapshot_common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use etcd_client::{Client, CompactionOptions, DeleteOptions, PutOptions, Txn, TxnOp};
use kubeboot::snapshot::{Integrity, KeyValue, Options, Problem, Snapshot};
use kubeboot_testkit::etcd::{Etcd, EtcdOptions, etcd35_bin_dir};
use snapshot_common::{Rng, bounded, deadline};

const KEYS: usize = 3000;

/// What `etcdctl get --prefix "" -w json` said: (header revision, kvs by key).
fn etcdctl_view(etcd: &Etcd) -> Result<(i64, BTreeMap<Vec<u8>, KeyValue>)> {
    let out = etcd.etcdctl(&["--command-timeout=30s", "get", "--prefix", "", "-w", "json"])?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let b64 = |v: &serde_json::Value| -> Result<Vec<u8>> {
        let s = v.as_str().unwrap_or("");
        Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
    };
    let int = |v: &serde_json::Value| v.as_i64().unwrap_or(0);
    let mut kvs = BTreeMap::new();
    for kv in json["kvs"].as_array().context("no kvs")? {
        let kv = KeyValue {
            key: b64(&kv["key"])?.into(),
            value: b64(&kv["value"])?.into(),
            create_revision: int(&kv["create_revision"]),
            mod_revision: int(&kv["mod_revision"]),
            version: int(&kv["version"]),
            lease: int(&kv["lease"]),
        };
        kvs.insert(kv.key.to_vec(), kv);
    }
    Ok((int(&json["header"]["revision"]), kvs))
}

fn key(i: usize) -> Vec<u8> {
    format!("/test/k{i:05}").into_bytes()
}

fn value(rng: &mut Rng, i: usize, round: u8) -> Vec<u8> {
    let len = match i % 600 {
        0 => [0, 150_000, 700_000, 1_100_000, 1_500_000][(i / 600) % 5],
        _ if i.is_multiple_of(97) => 0,
        _ => (rng.next() % 3000) as usize,
    };
    let mut v = vec![round; len];
    if let Some(first) = v.first_mut() {
        *first = rng.next() as u8;
    }
    v
}

/// Puts, updates, deletes, a compaction, more writes. Returns the compaction revision.
async fn write_history(c: &mut Client) -> Result<i64> {
    let mut rng = Rng(7);
    // Round 1: all keys, 100 per txn (many sub-revisions in one revision).
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|&i| TxnOp::put(key(i), value(&mut rng, i, 1), None))
            .collect();
        c.txn(Txn::new().and_then(ops)).await?;
    }
    c.put(b"\x00binary\xffkey".to_vec(), vec![0u8, 1, 2, 255], None)
        .await?;
    // Round 2: every third key updated by concurrent single puts, some twice.
    let mut tasks = Vec::new();
    for t in 0..16 {
        let mut c = c.clone();
        let vals: Vec<_> = (0..KEYS)
            .filter(|i| i.is_multiple_of(3) && i % 16 == t)
            .map(|i| (i, value(&mut rng, i, 2)))
            .collect();
        tasks.push(tokio::spawn(async move {
            for (i, v) in vals {
                c.put(key(i), v.clone(), None).await?;
                if i.is_multiple_of(9) {
                    c.put(key(i), v, None).await?;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Deletes: single keys and one range (several tombstones in one revision).
    for i in (0..KEYS).step_by(7) {
        c.delete(key(i), None).await?;
    }
    c.delete(
        b"/test/k029".to_vec(),
        Some(DeleteOptions::new().with_prefix()),
    )
    .await?;
    let rev = c
        .get(b"/test/k00001".to_vec(), None)
        .await?
        .header()
        .map_or(0, |h| h.revision());
    c.compact(rev, Some(CompactionOptions::new().with_physical()))
        .await?;
    // After the compaction: re-create deleted keys, update, delete, attach a lease.
    let lease = c.lease_grant(600, None).await?.id();
    for i in (0..KEYS).step_by(14) {
        c.put(
            key(i),
            value(&mut rng, i, 3),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    }
    for i in (1..KEYS).step_by(50) {
        c.put(key(i), value(&mut rng, i, 4), None).await?;
    }
    for i in (2..KEYS).step_by(11) {
        c.delete(key(i), None).await?;
    }
    Ok(rev)
}

fn check_against_etcd(bin_dir: Option<PathBuf>, tls: bool) -> Result<()> {
    let mut etcd = Etcd::start(EtcdOptions {
        bin_dir,
        tls,
        max_request_bytes: Some(8 << 20),
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let compacted = rt.block_on(async {
        let mut c = tokio::time::timeout(Duration::from_secs(10), etcd.client()).await??;
        tokio::time::timeout(Duration::from_secs(60), write_history(&mut c)).await?
    })?;
    let (revision, want) = etcdctl_view(&etcd)?;
    let file = etcd.temp_dir().join("snapshot.db");
    etcd.snapshot_save(&file)?;

    let snap = Snapshot::open(&file, &Options::default())?;
    assert_eq!(snap.integrity(), Integrity::Verified);
    // `inspect` reports what `etcdctl snapshot status` does, field for field.
    let file_arg = file.to_str().context("temp path")?;
    let out = etcd.etcdctl(&["snapshot", "status", file_arg, "-w", "json"])?;
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ours = serde_json::to_value(snap.status()?)?;
    // Walked beside the parse (as `inspect` asks) or after it: the same status.
    let beside = Options {
        status: true,
        ..Options::default()
    };
    let walked = serde_json::to_value(Snapshot::open(&file, &beside)?.status()?)?;
    assert_eq!(walked, ours);
    // And from a mapping of the file, as `inspect` reads it.
    let mapped = Options {
        map_or_exit: Some(3),
        ..beside
    };
    let walked = serde_json::to_value(Snapshot::open(&file, &mapped)?.status()?)?;
    assert_eq!(walked, ours);
    for field in ["hash", "revision", "totalKey", "totalSize"] {
        assert_eq!(
            ours[field], theirs[field],
            "{field}: ours {ours}, etcdctl {theirs}"
        );
    }
    assert_eq!(snap.revision(), revision);
    assert_eq!(snap.compact_revision(), Some(compacted));
    assert_same(&snap, &want);
    assert!(
        want.values().any(|kv| kv.value.len() >= 1_000_000),
        "a value needing overflow pages"
    );
    assert!(want.values().any(|kv| kv.lease != 0) && want.values().any(|kv| kv.value.is_empty()));
    assert!(snap.get(b"/test/k00000")?.is_some() && snap.get(b"/test/k00002")?.is_none());
    for prefix in [
        &b"/test/k029"[..],
        b"/test/k01",
        b"\x00",
        b"/nope",
        b"/test/k02999",
    ] {
        let expect: Vec<_> = want.keys().filter(|k| k.starts_with(prefix)).collect();
        let got: Vec<_> = snap
            .prefix(prefix)
            .map(|kv| kv.map(|kv| kv.key))
            .collect::<Result<_, _>>()?;
        assert_eq!(got, expect, "prefix {prefix:?}");
    }

    // The raw data dir of the stopped member: same view, no trailer.
    etcd.shutdown()?;
    let db = etcd.data_dir().join("member/snap/db");
    let raw = Snapshot::open(
        &db,
        &Options {
            skip_hash_check: true,
            status: false,
            map_or_exit: None,
        },
    )?;
    assert_eq!(raw.integrity(), Integrity::NoTrailerSkipped);
    assert_eq!(raw.revision(), revision);
    assert_same(&raw, &want);
    let err = Snapshot::open(&db, &Options::default()).unwrap_err();
    assert_eq!(err.problem(), Some(&Problem::MissingTrailer));
    assert!(err.to_string().contains("--skip-hash-check"), "{err}");
    Ok(())
}

fn assert_same(snap: &Snapshot, want: &BTreeMap<Vec<u8>, KeyValue>) {
    let got: Vec<KeyValue> = snap.prefix(b"").map(Result::unwrap).collect();
    assert_eq!(got.len(), want.len(), "number of live keys");
    assert_eq!(snap.len(), want.len());
    for (g, w) in got.iter().zip(want.values()) {
        assert_eq!(g.key, w.key);
        let meta = |kv: &KeyValue| {
            (
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease,
                kv.value.len(),
            )
        };
        assert_eq!(
            meta(g),
            meta(w),
            "key {:?}",
            String::from_utf8_lossy(&g.key)
        );
        assert!(
            g.value == w.value,
            "value of {:?} differs",
            String::from_utf8_lossy(&g.key)
        );
    }
}

#[test]
fn etcd_34_snapshot_matches_etcdctl_get() {
    bounded(deadline(), || check_against_etcd(None, true));
}

#[test]
fn etcd_35_snapshot_matches_etcdctl_get() {
    let Some(dir) = etcd35_bin_dir() else {
        eprintln!("SKIPPED: etcd 3.5 not found (run scripts/setup-tools)");
        return;
    };
    bounded(deadline(), move || check_against_etcd(Some(dir), false));
}

/// Not a test: builds a large snapshot for the `inspect` benchmark.
/// `KUBEBOOT_BENCH_OUT=/tmp/big.db KUBEBOOT_BENCH_KEYS=200000 cargo test --release
/// --test snapshot_etcd -- --ignored --nocapture make_large_snapshot`
#[test]
#[ignore = "benchmark input generator"]
fn make_large_snapshot() {
    let out = std::env::var("KUBEBOOT_BENCH_OUT").unwrap_or_else(|_| "/tmp/kubeboot-big.db".into());
    let keys: usize = std::env::var("KUBEBOOT_BENCH_KEYS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    bounded(Duration::from_secs(600), move || {
        let etcd = Etcd::start(EtcdOptions {
            max_request_bytes: Some(8 << 20),
            ..Default::default()
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let c = etcd.client().await?;
            let mut tasks = Vec::new();
            for t in 0..8 {
                let mut c = c.clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = Rng(t as u64 + 1);
                    let mine: Vec<usize> = (t..keys).step_by(8).collect();
                    for chunk in mine.chunks(128) {
                        let ops: Vec<TxnOp> = chunk
                            .iter()
                            .map(|&i| {
                                let k = format!("/registry/pods/ns{}/pod-{i:07}", i % 50);
                                TxnOp::put(k, vec![b'x'; 200 + (rng.next() % 1800) as usize], None)
                            })
                            .collect();
                        c.txn(Txn::new().and_then(ops)).await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            anyhow::Ok(())
        })?;
        etcd.snapshot_save(std::path::Path::new(&out))?;
        eprintln!("wrote {out} ({keys} keys)");
        Ok(())
    });
}
