//! `kubeboot ensure` through the real binary, without a cluster: the kubelet's
//! `/healthz` is a one-line HTTP server in the test, the api-server is down (nothing
//! listens), and etcd is real (Debian's 3.4). `--dry-run` shows each branch of the
//! fallback chain; the whole recovery runs in the `ensure` drill (scripts/drill).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_fails, kubeboot, stderr, stdout};
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

/// A kubeconfig for an api-server that is not there.
fn dead_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    path
}

/// Marks the backup in `dir` as one of a self-hosted etcd (the manifest's sums cover
/// the files, not the manifest); returns its manifest.
fn mark_self_hosted(dir: &Path) -> serde_json::Value {
    let path = dir.join("backup.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    m["self_hosted_etcd"] = true.into();
    fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
    m
}

struct Node {
    work: tempfile::TempDir,
    kubelet: String,
}

impl Node {
    fn new() -> Node {
        Node {
            work: tempfile::tempdir().unwrap(),
            kubelet: common::healthz(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.work.path().join(p)
    }

    fn ensure(&self, args: &[&str]) -> std::process::Output {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        kubeboot(&all)
    }

    /// `ensure` in the background, its stderr in `log`.
    fn spawn(&self, args: &[&str], log: &Path) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
            .args(self.args(args))
            .stderr(fs::File::create(log).unwrap())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let kubeconfig = dead_kubeconfig(self.work.path());
        let s = |p: &str| self.path(p).to_str().unwrap().to_string();
        let mut all: Vec<String> = [
            "ensure",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--kubelet-healthz-url",
            &self.kubelet,
            "--backup-dir",
            &s("backups"),
            "--recovery-root",
            &s("recovery"),
            "--pod-manifest-path",
            &s("manifests"),
            "--bootstrap-secrets-dir",
            &s("bootstrap-secrets"),
            "--lock-file",
            &s("start.lock"),
            // Not the host's /var/lib/etcd; absent unless a test puts a db there.
            "--etcd-data-dir",
            &s("etcd-data"),
            "--request-timeout",
            "2s",
            "--poll-interval",
            "200ms",
            "--etcd-dial-timeout",
            "2s",
            // Not the host's systemd: tests/systemd_dbus.rs covers that probe.
            "--kubelet-unit=",
            // Not the host's container runtime: tests/ensure_witness.rs covers that.
            "--cri-socket=",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    /// Nothing may be written by a dry run or a refusal.
    fn assert_untouched(&self) {
        for d in ["recovery", "manifests", "bootstrap-secrets"] {
            assert!(!self.path(d).exists(), "{d} was written");
        }
    }
}

#[test]
fn with_the_apiserver_down_a_live_etcd_is_chosen_after_the_grace() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let node = Node::new();
    let out = node.ensure(&[
        "--etcd-servers",
        &etcd.endpoint(),
        "--boot-grace",
        "1s",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with("would recover from etcd: the api-server is down"),
        "{said}"
    );
    // It waited for the grace first, saying why.
    assert!(
        stderr(&out).contains("the api-server is not ready yet"),
        "{}",
        stderr(&out)
    );
    node.assert_untouched();
}

#[test]
fn with_etcd_down_too_a_backup_is_restored_only_where_policy_allows() {
    // A real backup, then its etcd goes away.
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let node = Node::new();
    let backup_dir = node.path("backups");
    let out = kubeboot(&[
        "backup",
        "--etcd-servers",
        &etcd.endpoint(),
        "--backup-dir",
        backup_dir.to_str().unwrap(),
        "--lock-file",
        node.path("backup.lock").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let endpoint = etcd.endpoint();
    drop(etcd);

    // The test cluster's etcd is external: its backup cannot be restored by kubeboot.
    let args = [
        "--etcd-servers",
        &endpoint,
        "--boot-grace",
        "0s",
        "--dry-run",
    ];
    let out = node.ensure(&args);
    assert_fails(&out, 3, "external etcd");

    // Mark the backup as one of a self-hosted etcd (the manifest's sums cover the
    // files, not the manifest): now policy decides.
    let b = fs::read_dir(&backup_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("backup.json").exists())
        .unwrap();
    let m = mark_self_hosted(&b);

    let out = node.ensure(&args);
    assert_fails(&out, 4, "may not restore backups");
    let out = node.ensure(
        &[
            &args[..],
            &[
                "--backup-restore-node",
                "master-2",
                "--node-name",
                "master-1",
            ],
        ]
        .concat(),
    );
    assert_fails(&out, 4, "may not restore backups");
    let out = node.ensure(
        &[
            &args[..],
            &[
                "--backup-restore-node",
                "master-1",
                "--node-name",
                "master-1",
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.starts_with("would recover from backup "), "{said}");
    assert!(said.contains(b.to_str().unwrap()), "{said}");

    // A newer encrypted backup whose archive is gone is damaged, and passed over like
    // a damaged plain one (tests/cli_ensure_crypt.rs: a whole one is never passed over).
    let name = b.file_name().unwrap().to_str().unwrap();
    let (at, rev) = kubeboot::backup::catalog::parse_dir_name(name).unwrap();
    let sealed = backup_dir.join(kubeboot::backup::catalog::dir_name(at, rev + 10));
    fs::create_dir(&sealed).unwrap();
    let mut e = m.clone();
    e["revision"] = (rev + 10).into();
    e["archive"] = serde_json::json!({"path": "backup.tar.age", "size": 1, "sha256": "00",
        "encryption": "age", "recipients": ["age1example"]});
    fs::write(sealed.join("backup.json"), serde_json::to_vec(&e).unwrap()).unwrap();
    let out = node.ensure(&[&args[..], &["--allow-backup-restore"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(b.to_str().unwrap()),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("passed over"), "{}", stderr(&out));
    fs::remove_dir_all(&sealed).unwrap();

    // A damaged backup is passed over: none is left.
    let snap = b.join("snapshot.db");
    let mut bytes = fs::read(&snap).unwrap();
    bytes[100] ^= 1;
    fs::write(&snap, bytes).unwrap();
    let out = node.ensure(&[&args[..], &["--allow-backup-restore"]].concat());
    assert_fails(&out, 3, "no whole backup");
    assert!(stderr(&out).contains("passed over"), "{}", stderr(&out));
    node.assert_untouched();
}

/// Takes a backup of `etcd` into the node's backup dir and marks it as one of a
/// self-hosted etcd; returns its dir.
fn self_hosted_backup(node: &Node, etcd: &Etcd) -> PathBuf {
    let backup_dir = node.path("backups");
    let before: Vec<PathBuf> = fs::read_dir(&backup_dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let out = kubeboot(&[
        "backup",
        "--etcd-servers",
        &etcd.endpoint(),
        "--backup-dir",
        backup_dir.to_str().unwrap(),
        "--lock-file",
        node.path("backup.lock").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = fs::read_dir(&backup_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("backup.json").exists() && !before.contains(p))
        .unwrap();
    mark_self_hosted(&b);
    b
}

#[test]
fn a_backup_is_restored_over_older_local_data_but_never_over_newer() {
    let mut etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let node = Node::new();
    let older = self_hosted_backup(&node, &etcd);
    let out = etcd
        .etcdctl(&["put", "/kubeboot-test/after-the-backup", "x"])
        .unwrap();
    assert!(out.status.success());
    let newest = self_hosted_backup(&node, &etcd);
    let out = etcd
        .etcdctl(&["put", "/kubeboot-test/after-both", "x"])
        .unwrap();
    assert!(out.status.success());
    let endpoint = etcd.endpoint();
    etcd.shutdown().unwrap();
    let local_db = node.path("etcd-data/member/snap/db");
    fs::create_dir_all(local_db.parent().unwrap()).unwrap();
    let args = [
        "--etcd-servers",
        &endpoint,
        "--boot-grace",
        "0s",
        "--allow-backup-restore",
        "--dry-run",
    ];

    // The local data is etcd's own, stopped after both backups: it is never replaced.
    // Where policy allows, it is started as it is (the dry run says so)...
    let newer = fs::read(etcd.data_dir().join("member/snap/db")).unwrap();
    fs::write(&local_db, &newer).unwrap();
    let out = node.ensure(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("would recover from the local etcd data in")
            && said.contains("not replaced")
            && said.contains("starting etcd on it as it is"),
        "{said}"
    );
    assert_eq!(fs::read(&local_db).unwrap(), newer);
    node.assert_untouched();
    // ... elsewhere it is waited for.
    let not_allowed: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--allow-backup-restore")
        .collect();
    let log = node.path("ensure.log");
    let mut child = node.spawn(&not_allowed, &log);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !fs::read_to_string(&log).unwrap().contains("not replaced") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ensure exited: {}",
            fs::read_to_string(&log).unwrap()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never refused to replace newer data: {}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let said = fs::read_to_string(&log).unwrap();
    assert!(said.contains("intact at revision"), "{said}");
    assert_eq!(fs::read(&local_db).unwrap(), newer);
    node.assert_untouched();

    // Local data older than the newest backup: that backup (by revision) is restored.
    fs::copy(older.join("snapshot.db"), &local_db).unwrap();
    let out = node.ensure(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains(newest.to_str().unwrap()), "{said}");
    assert!(said.contains("older than the backup"), "{said}");

    // Damaged local data: restored over, saying so.
    fs::write(&local_db, b"not a bbolt file").unwrap();
    let out = node.ensure(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is unreadable"), "{}", stdout(&out));
    node.assert_untouched();
}

#[test]
fn nothing_to_recover_from_is_exit_3_naming_what_was_tried() {
    let node = Node::new();
    let out = node.ensure(&["--boot-grace", "0s"]);
    assert_fails(&out, 3, "no etcd endpoints are configured");
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", stderr(&out));
    node.assert_untouched();
}

#[test]
fn a_dead_kubelet_fails_after_the_grace() {
    let mut node = Node::new();
    node.kubelet = "http://127.0.0.1:1/healthz".into();
    let out = node.ensure(&["--boot-grace", "0s"]);
    assert_fails(&out, 1, "the kubelet is not healthy");
    node.assert_untouched();
}

/// A dry run decides whatever the kubelet does (here nothing listens on its healthz
/// port, and the grace is long: a real run would wait for it), and `-o json` gives the
/// decision and its evidence in the documented shape, exiting as the decision would.
#[test]
fn a_dry_run_reports_the_decision_as_json_whatever_the_kubelet_does() {
    let mut node = Node::new();
    node.kubelet = "http://127.0.0.1:1/healthz".into();
    fs::create_dir_all(node.path("etcd-data")).unwrap();
    let out = node.ensure(&["--boot-grace", "0s", "--dry-run", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["decision"], "no-source", "{v}");
    assert_eq!(v["exit_code"], 3);
    assert!(v["via"].is_null());
    assert!(v["reason"].as_str().unwrap().contains("no etcd endpoints"));
    let e = &v["evidence"];
    assert_eq!(e["kubelet"]["state"], "down", "{v}");
    assert!(
        e["kubelet"]["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:1")
    );
    assert_eq!(e["apiserver"]["state"], "down");
    assert_eq!(e["etcd"]["state"], "not-configured");
    assert_eq!(e["local_data"]["state"], "missing");
    assert_eq!(e["backup"]["state"], "none");
    assert_eq!(v["policy"]["backup_restore_allowed"], false);
    assert_eq!(v["policy"]["boot_grace_seconds"], 0);
    node.assert_untouched();

    // Not a dry run: the kubelet holds the decision up, as before.
    let out = node.ensure(&["--boot-grace", "0s"]);
    assert_fails(&out, 1, "the kubelet is not healthy");
    // A real run that fails prints its one error line and nothing on stdout, in any
    // format: a script reads the exit status (the outcome's shape is docs/cli.md's).
    for format in ["json", "yaml"] {
        let out = node.ensure(&["--boot-grace", "0s", "-o", format]);
        assert_fails(&out, 1, "the kubelet is not healthy");
        assert_eq!(stdout(&out), "", "{format}");
    }
}

#[test]
fn bad_input_and_the_lock() {
    let node = Node::new();
    let bad = node.path("bad-kubeconfig");
    fs::write(&bad, "not: [a kubeconfig").unwrap();
    let out = kubeboot(&[
        "ensure",
        "--kubeconfig",
        bad.to_str().unwrap(),
        "--lock-file",
        node.path("l").to_str().unwrap(),
    ]);
    assert_fails(&out, 2, "bad-kubeconfig");

    let _held = kubeboot::fsutil::LockFile::try_acquire(&node.path("start.lock")).unwrap();
    let out = node.ensure(&["--boot-grace", "0s"]);
    assert_fails(&out, 4, "is running on this node");
    node.assert_untouched();
}

#[test]
fn while_another_master_holds_the_recovery_lock_ensure_waits() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let node = Node::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cfg = kubeboot::source::etcd::EtcdConfig::new(vec![etcd.endpoint()]);
    let held = runtime
        .block_on(kubeboot::ensure::lock::acquire(
            &cfg,
            "master-9 since then",
            std::time::Duration::from_secs(30),
        ))
        .unwrap();
    assert!(matches!(held, kubeboot::ensure::lock::Acquired::Held(_)));

    let log = node.path("ensure.log");
    let kubeconfig = dead_kubeconfig(node.work.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args([
            "ensure",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--kubelet-healthz-url",
            &node.kubelet,
            "--etcd-servers",
            &etcd.endpoint(),
            "--boot-grace",
            "0s",
            "--poll-interval",
            "200ms",
            "--request-timeout",
            "2s",
            "--recovery-root",
            node.path("recovery").to_str().unwrap(),
            "--pod-manifest-path",
            node.path("manifests").to_str().unwrap(),
            "--bootstrap-secrets-dir",
            node.path("bootstrap-secrets").to_str().unwrap(),
            "--lock-file",
            node.path("start.lock").to_str().unwrap(),
            "--kubelet-unit=",
            "--cri-socket=",
        ])
        .stderr(fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !fs::read_to_string(&log)
        .unwrap()
        .contains("master-9 since then")
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ensure exited: {}",
            fs::read_to_string(&log).unwrap()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never waited on the lock: {}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SIGTERM: it stops cleanly, says what it was waiting for, and wrote nothing.
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let said = fs::read_to_string(&log).unwrap();
    assert!(
        said.contains(
            "interrupted during: checking the control plane: another master is recovering"
        ),
        "{said}"
    );
    node.assert_untouched();
    drop(held);
}

/// A host without a CA bundle (no `ca-certificates`: a minimal image, or the Debian
/// minbase masters of the machine drills, where this was found) still reads the
/// kubelet's plain-http healthz: no TLS is involved, so no trust store may be needed.
/// SSL_CERT_FILE and SSL_CERT_DIR point the native trust store at nothing, as such a
/// host has.
#[test]
fn the_kubelet_healthz_is_read_on_a_host_without_ca_certificates() {
    let node = Node::new();
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(node.args(&["--boot-grace", "0s", "--dry-run", "-o", "json"]))
        .env("KUBEBOOT_CONFIG", "/dev/null")
        .env("SSL_CERT_FILE", empty.path().join("none.pem"))
        .env("SSL_CERT_DIR", empty.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!("{e}: {} {}", stdout(&out), stderr(&out));
    });
    assert_eq!(v["evidence"]["kubelet"]["state"], "healthy", "{v}");
    node.assert_untouched();
}

/// Issue 12, finding 5: recovered asset dirs hold the cluster's keys. A run that may
/// write (here one that ends at once on a dead kubelet) keeps only the newest
/// `--keep-recoveries` of them, removes a killed run's temp dirs (a half-written asset
/// dir, a decrypted snapshot) and sets the root's drifted mode back to 0700; the restore
/// marker's local copy stays. A dry run touches none of it.
#[test]
fn old_recoveries_and_a_killed_runs_temps_are_removed_at_the_next_run() {
    use std::os::unix::fs::PermissionsExt;
    let mut node = Node::new();
    node.kubelet = "http://127.0.0.1:1/healthz".into();
    let root = node.path("recovery");
    let recoveries = [
        "20261101T000000.000000Z-etcd",
        "20261102T000000.000000Z-apiserver",
        "20261103T000000.000000Z-backup",
        "20261104T000000.000000Z-local-etcd-data",
    ];
    for d in recoveries {
        fs::create_dir_all(root.join(d).join("tls")).unwrap();
        fs::write(root.join(d).join("tls/service-account.key"), "key").unwrap();
    }
    let temps = [
        ".20261105T000000.000000Z-etcd.tmp-999999999",
        ".kubeboot-decrypted-a1b2c3.kubeboot-tmp-999999998",
    ];
    for t in temps {
        fs::create_dir_all(root.join(t)).unwrap();
        fs::write(root.join(t).join("snapshot.db"), "secret data").unwrap();
    }
    fs::write(root.join("restore-marker.json"), "{}").unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let listing = || {
        let mut n: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let before = listing();

    let out = node.ensure(&["--boot-grace", "0s", "--dry-run", "--keep-recoveries", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(listing(), before, "a dry run removes nothing");

    let out = node.ensure(&["--boot-grace", "0s", "--keep-recoveries", "2"]);
    assert_fails(&out, 1, "the kubelet is not healthy");
    assert_eq!(
        listing(),
        [
            "20261103T000000.000000Z-backup",
            "20261104T000000.000000Z-local-etcd-data",
            "restore-marker.json"
        ]
    );
    let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    let said = stderr(&out);
    for gone in [recoveries[0], recoveries[1], temps[0], temps[1]] {
        assert!(said.contains(gone), "the journal names {gone}: {said}");
    }
    assert!(!said.contains("secret data"), "{said}");
}

/// Issue 14: the master's disk was replaced and its backups went with it; the copy
/// `backup --remote` kept in the store is the fall-back, only with
/// `--allow-remote-backup`, and only where policy lets this node restore.
#[test]
fn with_no_local_backup_the_store_s_newest_is_the_fall_back_when_allowed() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let node = Node::new();
    let store = node.path("share");
    fs::create_dir_all(&store).unwrap();
    let url = format!("file://{}", store.display());
    // Taken on the master that was replaced: its own backup dir is gone with it.
    for _ in 0..2 {
        let out = kubeboot(&[
            "backup",
            "--etcd-servers",
            &etcd.endpoint(),
            "--backup-dir",
            node.path("lost-disk/backups").to_str().unwrap(),
            "--lock-file",
            node.path("backup.lock").to_str().unwrap(),
            "--remote",
            &url,
            "--allow-plaintext-upload",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        cluster::load_into(&etcd).unwrap();
    }
    let endpoint = etcd.endpoint();
    drop(etcd);
    fs::remove_dir_all(node.path("lost-disk")).unwrap();
    // Both copies are of a self-hosted etcd (the sums cover the files, not backup.json).
    let mut names: Vec<String> = fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| kubeboot::backup::catalog::parse_dir_name(n).unwrap().1);
    for n in &names {
        mark_self_hosted(&store.join(n));
    }
    let newest = names.last().unwrap();
    let args = [
        "--etcd-servers",
        &endpoint,
        "--boot-grace",
        "0s",
        "--dry-run",
        "--allow-backup-restore",
        "--backup-remote",
        &url,
    ];
    // Not without the policy's switch.
    let out = node.ensure(&args);
    assert_fails(&out, 3, "no whole backup");
    let out = node.ensure(&[&args[..], &["--allow-remote-backup", "-o", "json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["via"], "backup", "{v}");
    let backup = &v["evidence"]["backup"];
    let revision = kubeboot::backup::catalog::parse_dir_name(newest).unwrap().1;
    assert_eq!(backup["revision"], revision, "{v}");
    assert_eq!(
        backup["detail"],
        format!("downloaded from {url}/{newest}"),
        "{v}"
    );
    assert!(stderr(&out).contains("from the store, checked against its backup.json"));
    node.assert_untouched();
    // Policy still decides whether this node may restore it.
    let without: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--allow-backup-restore")
        .collect();
    let out = node.ensure(&[&without[..], &["--allow-remote-backup"]].concat());
    assert_fails(&out, 4, "may not restore backups");
    // A flipped byte in the store's newest copy: refused by name, never restored.
    let snap = store.join(newest).join("snapshot.db");
    let mut bytes = fs::read(&snap).unwrap();
    bytes[100] ^= 1;
    fs::write(&snap, bytes).unwrap();
    let out = node.ensure(&[&args[..], &["--allow-remote-backup"]].concat());
    assert_fails(&out, 3, &format!("{url}/{newest}/snapshot.db: "));
    node.assert_untouched();
    // The switch needs the store.
    let out = node.ensure(&["--allow-remote-backup"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--backup-remote <URL>"),
        "{}",
        stderr(&out)
    );
}

/// Found by the machine drill `power-loss-etcd-lost`: with every member's data dir lost,
/// the members' units form a new, empty cluster at boot. `ensure` used to "recover
/// from" it and fail with nothing to recover (exit 3); with `--etcd-unit` such an etcd
/// counts as down, and the host step ranks it below the backup: the node the policy
/// names restores. Without `--etcd-unit` nothing changes (etcd is not kubeboot's).
#[test]
fn with_etcd_unit_an_empty_etcd_formed_over_lost_data_is_restored_over_by_policy() {
    let node = Node::new();
    let source = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&source).unwrap();
    let out = kubeboot(&[
        "backup",
        "--etcd-servers",
        &source.endpoint(),
        "--backup-dir",
        node.path("backups").to_str().unwrap(),
        "--lock-file",
        node.path("backup.lock").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(source);

    // The new, empty cluster, and the unit's environment as Debian's /etc/default/etcd.
    let empty = Etcd::start(EtcdOptions::default()).unwrap();
    let listed = empty.etcdctl(&["member", "list"]).unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let peer = listed.split(", ").nth(3).unwrap().to_string();
    let endpoint = empty.endpoint();
    let env = node.path("etcd.env");
    fs::write(
        &env,
        format!(
            "ETCD_NAME=default\nETCD_DATA_DIR={}\nETCD_LISTEN_CLIENT_URLS={endpoint}\n\
             ETCD_ADVERTISE_CLIENT_URLS={endpoint}\nETCD_LISTEN_PEER_URLS={peer}\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS={peer}\nETCD_INITIAL_CLUSTER=default={peer}\n\
             ETCD_INITIAL_CLUSTER_STATE=new\n",
            empty.data_dir().display()
        ),
    )
    .unwrap();
    let plain = [
        "--etcd-servers",
        &endpoint,
        "--boot-grace",
        "0s",
        "--dry-run",
    ];
    let out = node.ensure(&plain);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("would recover from etcd"),
        "{}",
        stdout(&out)
    );

    let host = [
        &plain[..],
        &[
            "--etcd-unit",
            "etcd.service",
            "--etcd-env-file",
            env.to_str().unwrap(),
            "--allow-backup-restore",
            "--backup-restore-node",
            "master-2",
            "--node-name",
            "master-2",
        ],
    ]
    .concat();
    let out = node.ensure(&host);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.starts_with("would recover from backup "), "{said}");
    assert!(
        said.contains("only clusters older than the newest backup answer"),
        "{said}"
    );
    node.assert_untouched();
}

/// The restore policy is one value, the same on every master: `--allow-backup-restore`
/// on a master while `--backup-restore-node` names another would make two restorers
/// (the machine drill `power-loss-etcd-lost`, first configured that way, had all three
/// masters restore). A usage error before anything is probed; on the named node the
/// two agree.
#[test]
fn allowing_a_restore_here_while_the_policy_names_another_node_is_refused() {
    let node = Node::new();
    let policy = [
        "--backup-restore-node",
        "master-2",
        "--allow-backup-restore",
    ];
    let out = node.ensure(&[&policy[..], &["--node-name", "master-1", "--dry-run"]].concat());
    assert_fails(
        &out,
        2,
        "--allow-backup-restore on \"master-1\" contradicts --backup-restore-node \"master-2\"",
    );
    let out = node.ensure(
        &[
            &policy[..],
            &["--node-name", "master-2", "--dry-run", "--boot-grace", "0s"],
        ]
        .concat(),
    );
    assert_fails(&out, 3, "");
    node.assert_untouched();
}
