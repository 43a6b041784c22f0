//! What monitoring and an operator read from the backup dir, against real etcd:
//! `--metrics-file` (node_exporter textfile, counters carried over, replaced by rename),
//! `backup list [-o json] [--max-age]` (exit 8), `backup verify ID|FILE` (a snapshot
//! from etcd's own `etcdctl snapshot save` too), `backup prune [--dry-run]`, and the
//! `--max-size` cap refusing before anything is written.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{assert_fails, kubeboot, stderr, stdout};
use kubeboot::backup::catalog;
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn started() -> Etcd {
    let etcd = Etcd::start(EtcdOptions::default()).expect("start etcd");
    cluster::load_into(&etcd).expect("load the test cluster");
    etcd
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn backup(dir: &Path, endpoint: &str, extra: &[&str]) -> std::process::Output {
    let lock = dir.with_extension("lock");
    let mut args = vec![
        "backup",
        "--backup-dir",
        s(dir),
        "--lock-file",
        s(&lock),
        "--etcd-servers",
        endpoint,
    ];
    args.extend_from_slice(extra);
    kubeboot(&args)
}

/// `sub` of `kubeboot backup --backup-dir DIR`.
fn sub(dir: &Path, args: &[&str]) -> std::process::Output {
    let lock = dir.with_extension("lock");
    let mut all = vec!["backup", "--backup-dir", s(dir), "--lock-file", s(&lock)];
    all.extend_from_slice(args);
    kubeboot(&all)
}

/// The samples of a textfile, after checking each has HELP and TYPE lines before it.
fn samples(path: &Path) -> BTreeMap<String, f64> {
    let text = fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    let mut described = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or(line.strip_prefix("# TYPE "))
        {
            described.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        let (name, value) = line.split_once(' ').unwrap();
        assert_eq!(described.iter().filter(|d| *d == name).count(), 2, "{text}");
        out.insert(name.to_string(), value.parse().unwrap());
    }
    out
}

fn ids(dir: &Path) -> Vec<String> {
    catalog::scan(dir)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect()
}

#[test]
fn metrics_count_every_run_and_the_cap_refuses_before_writing() {
    let etcd = started();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let textfiles = work.path().join("textfile");
    fs::create_dir(&textfiles).unwrap();
    let prom = textfiles.join("kubeboot_backup.prom");
    let metrics = ["--metrics-file", s(&prom)];

    let out = backup(&dir, &etcd.endpoint(), &metrics);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = catalog::scan(&dir).unwrap().remove(0);
    let m = b.manifest.unwrap();
    let first = samples(&prom);
    assert!(first["kubeboot_backup_last_success_timestamp_seconds"] > 1.7e9);
    assert_eq!(
        first["kubeboot_backup_last_size_bytes"],
        m.size_on_disk() as f64
    );
    assert_eq!(first["kubeboot_backup_last_revision"], m.revision as f64);
    assert!(first["kubeboot_backup_last_duration_seconds"] > 0.0);
    assert_eq!(first["kubeboot_backup_runs_total"], 1.0);
    assert_eq!(first["kubeboot_backup_failures_total"], 0.0);
    assert_eq!(first["kubeboot_backup_last_run_success"], 1.0);
    let inode = fs::metadata(&prom).unwrap().ino();

    // A 1 KiB cap: refused from etcd's own database size, nothing written.
    let before = common::entries(&dir);
    let out = backup(
        &dir,
        &etcd.endpoint(),
        &[&metrics[..], &["--max-size", "1KiB"]].concat(),
    );
    assert_fails(&out, 1, "over --max-size 1024");
    assert_eq!(
        common::entries(&dir),
        before,
        "no staging dir, no new backup"
    );
    let second = samples(&prom);
    assert_eq!(second["kubeboot_backup_runs_total"], 2.0);
    assert_eq!(second["kubeboot_backup_failures_total"], 1.0);
    assert_eq!(second["kubeboot_backup_verification_failures_total"], 0.0);
    assert_eq!(second["kubeboot_backup_last_run_success"], 0.0);
    for kept in [
        "kubeboot_backup_last_success_timestamp_seconds",
        "kubeboot_backup_last_size_bytes",
        "kubeboot_backup_last_revision",
    ] {
        assert_eq!(second[kept], first[kept], "{kept} is the last success's");
    }
    assert_ne!(
        fs::metadata(&prom).unwrap().ino(),
        inode,
        "replaced by rename"
    );
    assert_eq!(
        common::entries(&textfiles),
        ["kubeboot_backup.prom"],
        "no temp file left"
    );

    // etcd unreachable (3), and a snapshot that is not restorable (an empty etcd: 1).
    let out = backup(&dir, "http://127.0.0.1:1", &metrics);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let empty = Etcd::start(EtcdOptions::default()).expect("start etcd");
    let out = backup(&dir, &empty.endpoint(), &metrics);
    assert_fails(&out, 1, "not restorable");
    let last = samples(&prom);
    assert_eq!(last["kubeboot_backup_runs_total"], 4.0);
    assert_eq!(last["kubeboot_backup_failures_total"], 3.0);
    assert_eq!(last["kubeboot_backup_verification_failures_total"], 1.0);
    assert_eq!(common::entries(&dir), before);
}

/// Moves every backup's `taken_at` back by `secs` (as if taken then).
fn age_backups(dir: &Path, secs: i64) {
    for f in catalog::scan(dir).unwrap() {
        let mut m = f.manifest.unwrap();
        let at: jiff::Timestamp = m.taken_at.parse().unwrap();
        m.taken_at = (at - jiff::SignedDuration::from_secs(secs)).to_string();
        fs::write(
            f.dir.join("backup.json"),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn list_verify_prune_and_max_age() {
    let etcd = started();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    assert!(backup(&dir, &etcd.endpoint(), &[]).status.success());
    etcd.etcdctl(&["put", "/extra", "x"]).unwrap();
    assert!(backup(&dir, &etcd.endpoint(), &[]).status.success());
    let taken = ids(&dir);
    assert_eq!(taken.len(), 2);
    let (newest, older) = (&taken[0], &taken[1]);

    let out = sub(&dir, &["list", "-o", "json", "--max-age", "1h"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backupDir"], s(&dir));
    assert_eq!(v["fresh"], true);
    let listed: Vec<&str> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [newest.as_str(), older.as_str()]);
    let b0 = &v["backups"][0];
    assert_eq!(b0["state"], "whole");
    assert_eq!(b0["encrypted"], false);
    assert!(b0["revision"].as_i64() > v["backups"][1]["revision"].as_i64());
    assert_eq!(
        b0["locations"][0],
        serde_json::json!({"kind": "local", "path": s(&dir.join(newest)), "state": "whole"})
    );
    let text = sub(&dir, &["list"]);
    let lines: Vec<String> = stdout(&text).lines().map(str::to_string).collect();
    assert!(lines[0].starts_with("ID "), "{lines:?}");
    assert!(lines[1].starts_with(newest.as_str()) && lines[1].contains(" local "));
    assert!(lines[1].ends_with("whole"), "{lines:?}");

    // Too old: exit 8, naming the backup and the limit.
    age_backups(&dir, 3 * 3600);
    let out = sub(&dir, &["list", "--max-age", "2h"]);
    assert_fails(&out, 8, &format!("{newest} is "));
    // 3 h, give or take the second the backup's time was truncated to.
    let err = stderr(&out);
    let age: u64 = err
        .split(&format!("{newest} is "))
        .nth(1)
        .and_then(|rest| rest.split("s old").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no age in {err}"));
    assert!((10_795..10_900).contains(&age), "{err}");
    assert!(err.contains("older than --max-age (7200s)"), "{err}");
    assert!(sub(&dir, &["list", "--max-age", "4h"]).status.success());

    // The newest rots: exit 8 though an older one is whole; verify names the file.
    let snap = dir.join(newest).join("snapshot.db");
    let mut bytes = fs::read(&snap).unwrap();
    bytes[4096] ^= 0xff;
    fs::write(&snap, bytes).unwrap();
    let out = sub(&dir, &["list", "--max-age", "4h"]);
    assert_fails(&out, 8, &format!("the newest backup {newest} is damaged"));
    assert!(stdout(&out).contains("damaged"), "{}", stdout(&out));
    assert_fails(&sub(&dir, &["verify", newest]), 1, "snapshot.db: sha256");
    let out = sub(&dir, &["verify", older]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("whole, restorable (bootstrap-kube-apiserver.yaml"));
    assert_fails(
        &sub(&dir, &["verify", "20000101T000000Z-r1"]),
        2,
        "no such backup",
    );
    // The old form still answers, in its old words.
    let out = sub(&dir, &["--list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("DAMAGED"), "{}", stdout(&out));

    // A snapshot from etcd's own tool, outside any backup dir.
    let saved = work.path().join("etcdctl.db");
    etcd.snapshot_save(&saved).unwrap();
    let out = sub(&dir, &["verify", s(&saved)]);
    assert!(out.status.success(), "{}", stderr(&out));

    // prune: --dry-run removes nothing; then it removes what it said.
    let keep_one = [
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
    ];
    let out = sub(&dir, &[&["prune", "--dry-run"][..], &keep_one].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("keep    {newest}  (last)")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!("would remove {older}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(ids(&dir).len(), 2);
    let out = sub(&dir, &[&["prune"][..], &keep_one].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<PathBuf> = catalog::scan(&dir)
        .unwrap()
        .into_iter()
        .map(|f| f.dir)
        .collect();
    assert_eq!(left, [dir.join(newest)]);
}

/// A disk that fills while the snapshot streams (simulated by a file-size limit, with
/// SIGXFSZ ignored so the write fails with EFBIG as a full disk fails with ENOSPC): the
/// run fails naming the file, and nothing is left, not even its staging dir.
#[test]
fn a_write_that_fails_midway_leaves_nothing() {
    let etcd = started();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let prom = work.path().join("kubeboot_backup.prom");
    let script = format!(
        "trap '' XFSZ; ulimit -f 16; exec \"$0\" backup --backup-dir {} --lock-file {} \
         --etcd-servers {} --metrics-file {}",
        s(&dir),
        s(&work.path().join("backup.lock")),
        etcd.endpoint(),
        s(&prom)
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_kubeboot")])
        .env("KUBEBOOT_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert_fails(&out, 1, "snapshot.db: File too large");
    assert!(
        common::entries(&dir).is_empty(),
        "{:?}",
        common::entries(&dir)
    );
    assert_eq!(samples(&prom)["kubeboot_backup_failures_total"], 1.0);
}
