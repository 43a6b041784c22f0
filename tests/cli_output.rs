//! `-o json|yaml` of the commands that report what they did (issue 15, "one output
//! contract"): `recover`, `render`, `backup` and `config check` print the documented
//! shape (docs/cli.md) on stdout, nothing else there; the text form stays the default.

mod common;

use std::path::Path;

use common::{kubeboot, stderr, stdout};
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// The JSON a command printed, which must have exactly the fields `want` (sorted).
fn report_of(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("kubeboot.json")).unwrap()).unwrap()
}

fn json_with(out: &std::process::Output, want: &[&str]) -> Value {
    let v = json(out);
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    assert_eq!(k, want, "{v}");
    v
}

#[test]
fn render_and_config_check_print_their_documented_shapes() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("assets");
    let d = dir.to_str().unwrap();
    let v = json_with(
        &kubeboot(&[
            "render",
            "--asset-dir",
            d,
            "--node-names",
            "m1",
            "-o",
            "json",
        ]),
        &[
            "apiServers",
            "assetDir",
            "files",
            "kubeletKubeconfigs",
            "movedAside",
            "next",
        ],
    );
    assert_eq!(v["assetDir"], d);
    assert_eq!(v["kubeletKubeconfigs"][0], "auth/kubelets/m1.kubeconfig");
    assert_eq!(
        v["files"].as_u64().unwrap() as usize,
        common::tree(&dir).len()
    );
    // kubeboot.json counts the same files (itself included) as the command printed.
    assert_eq!(report_of(&dir)["files"], v["files"]);
    // YAML, `-w` as etcdctl spells it; --force says where the old dir went.
    let out = kubeboot(&["render", "--asset-dir", d, "--force", "-w", "yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let y: Value = serde_yaml_ng::from_str(&stdout(&out)).unwrap();
    let moved = y["movedAside"].as_str().unwrap();
    assert!(Path::new(moved).is_dir(), "{moved}");

    let cfg = work.path().join("config.toml");
    std::fs::write(&cfg, "[backup]\nkeep-last = 3\n").unwrap();
    let c = cfg.to_str().unwrap();
    let v = json(&kubeboot(&["--config", c, "config", "check", "-o", "json"]));
    assert_eq!(
        v,
        serde_json::json!({"file": c, "found": true, "tables": ["backup"]})
    );
}

#[test]
fn recover_and_backup_print_their_documented_shapes() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let work = tempfile::tempdir().unwrap();
    let rec = work.path().join("rec");
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        rec.to_str().unwrap(),
        "--etcd-servers",
        &etcd.endpoint(),
        "-o",
        "json",
    ]);
    let v = json_with(
        &out,
        &[
            "components",
            "files",
            "kubeconfig",
            "movedAside",
            "recoveryDir",
            "restoredRevision",
            "selfHostedEtcd",
            "source",
        ],
    );
    assert_eq!(v["source"]["kind"], "etcd", "{v}");
    assert_eq!(v["source"]["location"], etcd.endpoint().as_str());
    assert!(v["source"]["revision"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(
        v["files"].as_u64().unwrap() as usize,
        common::tree(&rec).len()
    );
    assert_eq!(report_of(&rec)["files"], v["files"]);
    let components: Vec<&str> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        components,
        [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler"
        ]
    );

    let backups = work.path().join("backups");
    let out = kubeboot(&[
        "backup",
        "--etcd-servers",
        &etcd.endpoint(),
        "--backup-dir",
        backups.to_str().unwrap(),
        "--lock-file",
        work.path().join("b.lock").to_str().unwrap(),
        "-o",
        "json",
    ]);
    let v = json_with(
        &out,
        &[
            "components",
            "dir",
            "encryptedRecipients",
            "keys",
            "pkiFiles",
            "pruned",
            "revision",
            "size",
        ],
    );
    assert!(
        Path::new(v["dir"].as_str().unwrap())
            .join("backup.json")
            .is_file(),
        "{v}"
    );
    assert_eq!(v["encryptedRecipients"], Value::Null);
    assert!(v["keys"].as_u64().unwrap() > 0);
}

/// kubeboot.json names a snapshot source so it can be found and checked again: its
/// absolute path, its sha256 (what `sha256sum` prints) and its size.
#[test]
fn a_snapshot_source_is_recorded_by_absolute_path_sha256_and_size() {
    use sha2::Digest;
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap.db");
    etcd.snapshot_save(&snap).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .current_dir(work.path())
        .args([
            "recover",
            "--recovery-dir",
            "rec",
            "--etcd-backup-file",
            "snap.db",
        ])
        .args(["-o", "json"])
        .output()
        .unwrap();
    let v = json(&out);
    let bytes = std::fs::read(&snap).unwrap();
    let want = serde_json::json!({
        "location": snap.to_str().unwrap(),
        "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
        "size": bytes.len(),
    });
    for source in [&v["source"], &report_of(&work.path().join("rec"))["source"]] {
        for key in ["location", "sha256", "size"] {
            assert_eq!(source[key], want[key], "{key}: {source}");
        }
    }
}
