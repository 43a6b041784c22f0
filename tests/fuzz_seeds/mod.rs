//! The seeds the fuzz corpora grew from (docs/testing.md, "Fuzzing"), one dir per target:
//! the repo's fixtures, and what the tests make — the test cluster stored in a real etcd
//! (3.4, and 3.5 when installed) with updates, deletes and a compaction, saved with
//! `etcdctl snapshot save`, plus the stopped member's raw `member/snap/db`. Values are
//! made here rather than copied, so regenerating gives the same kinds of input. The
//! `config_toml` and `kubeconfig` corpora were seeded by hand (docs/config.md's example,
//! a kubeconfig with inline data, one naming files, one with an exec user).

use std::path::Path;

use anyhow::{Context, Result};
use kubeboot::cri::proto;
use kubeboot::snapshot::bbolt::Db;
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions, etcd35_bin_dir};
use prost::Message;
use serde_json::{Value, json};
use sha2::Digest;

use super::harness;

fn data() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Writes `bytes` as one seed of `target`, named by its hash (as libFuzzer names inputs).
fn put(root: &Path, target: &str, bytes: &[u8]) -> Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    let name = hex::encode(sha2::Sha256::digest(bytes));
    std::fs::write(dir.join(name.get(..40).unwrap_or(&name)), bytes)?;
    Ok(())
}

fn put_files(root: &Path, target: &str, files: &[std::path::PathBuf]) -> Result<()> {
    for f in files {
        put(
            root,
            target,
            &std::fs::read(f).with_context(|| f.display().to_string())?,
        )?;
    }
    Ok(())
}

fn dir_files(dir: &Path, ext: Option<&str>) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() && ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

pub fn write_all(root: &Path) -> Result<()> {
    let objects = cluster::read_objects(&cluster::cluster_data_dir())?;
    let entries = cluster::storage_entries("/registry", &objects)?;
    snapshots(root, &entries)?;
    codec(root, &entries)?;
    encryption(root)?;
    kubelet_pods(root, &objects)?;
    cri(root, &objects)?;
    Ok(())
}

/// bbolt: real snapshots and raw dbs; mvcc: their bucket `key` records, a few at a time.
fn snapshots(root: &Path, entries: &[(String, Vec<u8>)]) -> Result<()> {
    let auger = data().join("auger/boltdb");
    put_files(root, "bbolt", &[auger.join("db")])?;
    put_files(root, "mvcc", &[])?;
    for item in dir_files(&auger, Some("bin"))? {
        let value = std::fs::read(&item)?;
        let rev = [0, 0, 0, 0, 0, 0, 0, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 0];
        put(root, "mvcc", &harness::mvcc_records(&[(&rev, &value)]))?;
    }
    let mut dirs = vec![None];
    dirs.extend(etcd35_bin_dir().map(Some));
    for bin_dir in dirs {
        let mut etcd = Etcd::start(EtcdOptions {
            bin_dir,
            ..EtcdOptions::default()
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let mut c = etcd.client().await?;
            cluster::put_all(&mut c, entries).await?;
            // History: an update, a delete (a tombstone), a compaction (bucket meta).
            if let Some((k, v)) = entries.first() {
                c.put(k.as_str(), v.clone(), None).await?;
            }
            if let Some((k, _)) = entries.last() {
                c.delete(k.as_str(), None).await?;
            }
            let rev = c.get("x", None).await?.header().map_or(1, |h| h.revision());
            c.compact(rev - 2, None).await?;
            c.put("/registry/fuzz/after-compaction", "v", None).await?;
            anyhow::Ok(())
        })?;
        let snap = etcd.temp_dir().join("seed.db");
        etcd.snapshot_save(&snap)?;
        let bytes = std::fs::read(&snap)?;
        put(root, "bbolt", &bytes)?;
        mvcc_seeds(root, &bytes)?;
        etcd.shutdown()?;
        put_files(root, "bbolt", &[etcd.data_dir().join("member/snap/db")])?;
    }
    Ok(())
}

fn mvcc_seeds(root: &Path, snapshot: &[u8]) -> Result<()> {
    let db = Db::open(snapshot)?;
    let bucket = db.bucket(db.root(), b"key")?.context("no bucket key")?;
    let records: Vec<(Vec<u8>, Vec<u8>)> = db
        .cursor(bucket)?
        .map(|e| e.map(|e| (e.key.to_vec(), e.value.to_vec())))
        .collect::<Result<_, _>>()?;
    for chunk in records.chunks(4) {
        let pairs: Vec<(&[u8], &[u8])> = chunk.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        put(root, "mvcc", &harness::mvcc_records(&pairs))?;
    }
    Ok(())
}

/// Stored values: the api-server's own (auger), kubernetes/api's round-trip data, the test
/// cluster as stored, and encrypted values.
fn codec(root: &Path, entries: &[(String, Vec<u8>)]) -> Result<()> {
    let auger = data().join("auger");
    put_files(
        root,
        "codec",
        &dir_files(&auger.join("storage"), Some("bin"))?,
    )?;
    for v in ["v1.33.0", "v1.34.0"] {
        let dir = data().join("k8s-api-testdata").join(v);
        for pb in dir_files(&dir, Some("pb"))? {
            // The round-trip files are `k8s\0` envelopes already.
            put_files(root, "codec", &[pb])?;
        }
    }
    for (_, value) in entries {
        put(root, "codec", value)?;
    }
    for p in ["aescbc", "aesgcm", "secretbox", "plain"] {
        let f = data().join("encryption").join(format!("secret-db.{p}"));
        put_files(root, "codec", &[f])?;
    }
    Ok(())
}

/// Every config fixture alone, and each with a value it encrypted (after a NUL).
fn encryption(root: &Path) -> Result<()> {
    let dir = data().join("encryption");
    put_files(root, "encryption_config", &dir_files(&dir, Some("yaml"))?)?;
    let config = std::fs::read(dir.join("encryption-config.yaml"))?;
    for p in ["aescbc", "aesgcm", "secretbox", "plain"] {
        let mut seed = config.clone();
        seed.push(0);
        seed.extend(std::fs::read(dir.join(format!("secret-db.{p}")))?);
        put(root, "encryption_config", &seed)?;
    }
    Ok(())
}

/// The test cluster's pod templates as the kubelet lists its pods, with states.
fn pods(objects: &[Value]) -> Vec<Value> {
    let phases = ["Running", "Pending", "Succeeded", "Failed"];
    objects
        .iter()
        .filter_map(|o| Some((o["metadata"]["name"].as_str()?, o.pointer("/spec/template")?)))
        .enumerate()
        .map(|(i, (owner, t))| {
            let mut meta = t["metadata"].clone();
            meta["name"] = json!(format!("{owner}-{i}"));
            meta["namespace"] = json!("kube-system");
            meta["uid"] = json!(format!("uid-{i}"));
            if i % 3 == 0 {
                meta["ownerReferences"] =
                    json!([{"apiVersion":"apps/v1","kind":"DaemonSet","name":owner,"uid":"d","controller":true}]);
            }
            json!({"metadata": meta, "spec": t["spec"], "status": {
                "phase": phases[i % phases.len()],
                "containerStatuses": [{"name":"c","image":"i","imageID":"","ready":i % 2 == 0,
                    "restartCount":i,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}})
        })
        .collect()
}

fn kubelet_pods(root: &Path, objects: &[Value]) -> Result<()> {
    let items = pods(objects);
    let list = json!({"kind":"PodList","apiVersion":"v1","metadata":{},"items":items});
    put(root, "kubelet_pods", &serde_json::to_vec(&list)?)?;
    for item in &items {
        let one = json!({"kind":"PodList","apiVersion":"v1","metadata":{},"items":[item]});
        put(root, "kubelet_pods", &serde_json::to_vec(&one)?)?;
    }
    put(root, "kubelet_pods", br#"{"kind":"PodList","items":null}"#)?;
    put(
        root,
        "kubelet_pods",
        br#"{"kind":"Status","status":"Failure","code":401}"#,
    )?;
    Ok(())
}

/// The same pods as the runtime lists their sandboxes and containers.
fn cri(root: &Path, objects: &[Value]) -> Result<()> {
    let map = |v: &Value| -> std::collections::HashMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut sandboxes = Vec::new();
    let mut containers = Vec::new();
    for (i, pod) in pods(objects).iter().enumerate() {
        let m = &pod["metadata"];
        let (name, uid) = (m["name"].as_str().unwrap_or_default(), format!("uid-{i}"));
        let mut labels = map(&m["labels"]);
        labels.insert("io.kubernetes.pod.name".into(), name.into());
        labels.insert("io.kubernetes.pod.namespace".into(), "kube-system".into());
        labels.insert("io.kubernetes.pod.uid".into(), uid.clone());
        let id = format!("sandbox-{i}");
        sandboxes.push(proto::PodSandbox {
            id: id.clone(),
            metadata: Some(proto::PodSandboxMetadata {
                name: name.into(),
                uid,
                namespace: "kube-system".into(),
                attempt: 0,
            }),
            state: (i % 2) as i32,
            created_at: 1_700_000_000_000_000_000,
            labels: labels.clone(),
            annotations: map(&m["annotations"]),
            runtime_handler: String::new(),
        });
        labels.insert("io.kubernetes.container.name".into(), "c".into());
        containers.push(proto::Container {
            id: format!("container-{i}"),
            pod_sandbox_id: id,
            metadata: Some(proto::ContainerMetadata {
                name: "c".into(),
                attempt: 1,
            }),
            state: (i % 4) as i32,
            labels,
            ..Default::default()
        });
    }
    put(
        root,
        "cri",
        &proto::ListPodSandboxResponse { items: sandboxes }.encode_to_vec(),
    )?;
    put(
        root,
        "cri",
        &proto::ListContainersResponse { containers }.encode_to_vec(),
    )?;
    Ok(())
}
