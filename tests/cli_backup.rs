//! `kubeboot backup` end to end against real etcd (Debian's etcd 3.4; no double is
//! involved): the snapshot it keeps is accepted by etcd's own `etcdctl snapshot
//! status` and recovers the same asset dir as the live etcd; the PKI a restore needs
//! is kept with it; retention, `--list`, and bad input.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_fails, kubeboot, mode_of, stderr, stdout, tree};
use kubeboot::backup::catalog::{self, Manifest};
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn started(tls: bool) -> Etcd {
    let etcd = Etcd::start(EtcdOptions {
        tls,
        ..EtcdOptions::default()
    })
    .expect("start etcd");
    cluster::load_into(&etcd).expect("load the test cluster");
    etcd
}

/// `kubeboot backup` with a private lock file and the given backup dir.
fn backup(dir: &Path, args: &[&str]) -> std::process::Output {
    let lock = dir.with_extension("lock");
    let mut all = vec![
        "backup",
        "--backup-dir",
        dir.to_str().unwrap(),
        "--lock-file",
        lock.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    kubeboot(&all)
}

/// The backups in `dir`, oldest first, by directory name.
fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| catalog::parse_dir_name(&p.file_name().unwrap().to_string_lossy()).is_some())
        .collect();
    v.sort();
    v
}

#[test]
fn a_backup_is_restorable_by_etcd_and_by_recover() {
    let etcd = started(false);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let out = backup(&dir, &["--etcd-servers", &etcd.endpoint()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let taken = backups(&dir);
    assert_eq!(taken.len(), 1, "{:?}", common::entries(&dir));
    let b = &taken[0];
    assert!(
        stdout(&out).contains(&b.display().to_string()),
        "{}",
        stdout(&out)
    );
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(b), 0o700);
    assert_eq!(mode_of(&b.join("snapshot.db")), 0o600);
    assert_eq!(mode_of(&b.join("backup.json")), 0o600);

    let m: Manifest = catalog::read_manifest(b).unwrap();
    let name = b.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(&format!("-r{}", m.revision)), "{name}");
    assert_eq!(
        m.components,
        [
            "bootstrap-kube-apiserver.yaml",
            "bootstrap-kube-controller-manager.yaml",
            "bootstrap-kube-scheduler.yaml"
        ]
    );
    assert!(m.pki.is_empty(), "no TLS, no encryption: nothing to keep");

    // etcd's own tool checks the trailer and reads the revision we recorded.
    let status = etcd
        .etcdctl(&[
            "snapshot",
            "status",
            "-w",
            "json",
            b.join("snapshot.db").to_str().unwrap(),
        ])
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["revision"].as_i64(), Some(m.revision), "{status}");
    // etcd's totalKey counts every revision of every key; ours the live keys.
    assert!(
        status["totalKey"].as_u64() >= Some(m.keys as u64),
        "{status}"
    );

    // recover from the backup == recover from the live etcd.
    let live = work.path().join("live");
    let restored = work.path().join("restored");
    let rec = |dir: &Path, args: &[&str]| {
        let mut all = vec!["recover", "--recovery-dir", dir.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = kubeboot(&all);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    rec(&live, &["--etcd-servers", &etcd.endpoint()]);
    rec(
        &restored,
        &[
            "--etcd-backup-file",
            b.join("snapshot.db").to_str().unwrap(),
        ],
    );
    let (mut a, mut r) = (tree(&live), tree(&restored));
    a.remove("kubeboot.json");
    r.remove("kubeboot.json");
    assert_eq!(a, r, "the backup recovers what the live etcd does");

    // Run again at once: a second backup, or (same second, same revision) the same one.
    let again = backup(&dir, &["--etcd-servers", &etcd.endpoint()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(backups(&dir).len() <= 2);

    let out = backup(&dir, &["--list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("ok  {}", m.taken_at)),
        "{}",
        stdout(&out)
    );
}

#[test]
fn tls_backup_keeps_the_pki_a_restore_needs() {
    let etcd = started(true);
    let tls = etcd.tls().unwrap();
    let work = tempfile::tempdir().unwrap();
    let extra = work.path().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::write(extra.join("sa.key"), b"SA KEY").unwrap();
    let dir = work.path().join("backups");
    let out = backup(
        &dir,
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--etcd-ca-path",
            tls.ca_cert.to_str().unwrap(),
            "--etcd-certfile",
            tls.client_cert.to_str().unwrap(),
            "--etcd-keyfile",
            tls.client_key.to_str().unwrap(),
            "--pki-path",
            extra.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let b = &backups(&dir)[0];
    let m = catalog::read_manifest(b).unwrap();
    let mut sources: Vec<&str> = m.pki.iter().map(|r| r.source.as_deref().unwrap()).collect();
    sources.sort_unstable();
    let mut want = vec![
        tls.ca_cert.to_str().unwrap().to_string(),
        tls.client_cert.to_str().unwrap().to_string(),
        tls.client_key.to_str().unwrap().to_string(),
        extra.join("sa.key").to_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(sources, want);
    for record in &m.pki {
        let kept = b.join(&record.path);
        assert_eq!(
            fs::read(&kept).unwrap(),
            fs::read(record.source.as_ref().unwrap()).unwrap()
        );
        assert_eq!(mode_of(&kept), 0o600, "{}", record.path);
        assert_eq!(
            kept,
            b.join(format!("pki{}", record.source.as_ref().unwrap()))
        );
    }
    catalog::verify(b, &m).unwrap();
}

#[test]
fn retention_prunes_old_backups_and_leaves_foreign_dirs_alone() {
    let etcd = started(false);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let out = backup(&dir, &["--etcd-servers", &etcd.endpoint()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = backups(&dir)[0].clone();
    // Three older backups (copies of the first under older names), a dir of the
    // operator's own, a backup-named dir without a manifest, and a dead run's leftover.
    for name in [
        "20200101T000000Z-r1",
        "20200102T000000Z-r2",
        "20200103T000000Z-r3",
    ] {
        fs::create_dir(dir.join(name)).unwrap();
        for f in ["backup.json", "snapshot.db"] {
            fs::copy(first.join(f), dir.join(name).join(f)).unwrap();
        }
    }
    fs::create_dir(dir.join("operator-notes")).unwrap();
    // A new revision, so the next backup is a new one even within the same second.
    etcd.etcdctl(&["put", "/registry/drill/marker", "x"])
        .unwrap();
    fs::create_dir(dir.join("20200104T000000Z-r4")).unwrap();
    fs::create_dir(dir.join(".incomplete-20200105T000000Z-77")).unwrap();

    let out = backup(
        &dir,
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--keep-last",
            "2",
            "--keep-daily",
            "0",
            "--keep-weekly",
            "0",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("retention removed 3"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("20200104T000000Z-r4"),
        "the unreadable one is reported"
    );
    let left = common::entries(&dir);
    assert_eq!(left.len(), 4, "{left:?}");
    assert_eq!(left[0], "20200104T000000Z-r4");
    assert_eq!(left[1], first.file_name().unwrap().to_string_lossy());
    assert!(catalog::parse_dir_name(&left[2]).is_some(), "{left:?}");
    assert_eq!(left[3], "operator-notes");
}

#[test]
fn list_finds_a_damaged_backup() {
    let etcd = started(false);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    assert!(
        backup(&dir, &["--etcd-servers", &etcd.endpoint()])
            .status
            .success()
    );
    let snap = backups(&dir)[0].join("snapshot.db");
    let mut bytes = fs::read(&snap).unwrap();
    bytes[4096] ^= 0xff;
    fs::write(&snap, bytes).unwrap();
    let out = backup(&dir, &["--list"]);
    assert!(stdout(&out).contains("DAMAGED"), "{}", stdout(&out));
    assert_fails(&out, 1, "no whole backup");
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");

    let out = backup(&dir, &[]);
    assert_fails(&out, 2, "--etcd-servers is required");
    let out = backup(
        &dir,
        &["--etcd-servers", "http://127.0.0.1:1", "--keep-last", "0"],
    );
    assert_fails(&out, 2, "--keep-last must be at least 1");
    let out = backup(
        &dir,
        &[
            "--etcd-servers",
            "http://127.0.0.1:1",
            "--pki-path",
            "/nonexistent/ca.crt",
        ],
    );
    assert_fails(&out, 2, "/nonexistent/ca.crt");

    // Nothing listens on port 1: exit 3 naming the endpoint.
    let out = backup(
        &dir,
        &[
            "--etcd-servers",
            "http://127.0.0.1:1",
            "--etcd-dial-timeout",
            "2s",
        ],
    );
    assert_fails(&out, 3, "127.0.0.1:1");
    assert!(
        common::entries(&dir).is_empty(),
        "{:?}",
        common::entries(&dir)
    );

    // An etcd without a control plane in it: the snapshot is not restorable, exit 1.
    let empty = Etcd::start(EtcdOptions::default()).unwrap();
    let out = backup(&dir, &["--etcd-servers", &empty.endpoint()]);
    assert_fails(&out, 1, "not restorable");
    assert!(
        common::entries(&dir).is_empty(),
        "{:?}",
        common::entries(&dir)
    );

    // Another backup holds the lock: exit 4.
    let _held = kubeboot::fsutil::LockFile::try_acquire(&dir.with_extension("lock")).unwrap();
    let out = backup(&dir, &["--etcd-servers", &empty.endpoint()]);
    assert_fails(&out, 4, "another `kubeboot backup` is running");
}

#[test]
fn an_encrypted_cluster_is_verified_with_its_config_and_the_config_is_kept() {
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/encryption/encryption-config.yaml");
    let parsed = kubeboot::encryption::EncryptionConfig::from_file(&config).unwrap();
    let objects = cluster::read_objects(&cluster::cluster_data_dir()).unwrap();
    let plain = cluster::storage_entries("/registry", &objects).unwrap();
    let encrypted = cluster::encrypt_entries("/registry", &plain, &parsed).unwrap();
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        cluster::put_all(&mut etcd.client().await.unwrap(), &encrypted)
            .await
            .unwrap();
    });
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");

    let out = backup(&dir, &["--etcd-servers", &etcd.endpoint()]);
    assert_fails(&out, 1, "not restorable");
    assert!(
        stderr(&out).contains("aes"),
        "names the provider: {}",
        stderr(&out)
    );
    assert!(common::entries(&dir).is_empty());

    let out = backup(
        &dir,
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--encryption-provider-config",
            config.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let b = &backups(&dir)[0];
    let m = catalog::read_manifest(b).unwrap();
    assert_eq!(m.pki.len(), 1);
    assert_eq!(
        fs::read(b.join(&m.pki[0].path)).unwrap(),
        fs::read(&config).unwrap()
    );
}

/// The backup dir holds every Secret of the cluster (issue 12, finding 5): an existing
/// one whose mode drifted is set back to 0700, and a symlink in its place is refused,
/// naming it, never followed.
#[test]
fn an_existing_backup_dir_is_made_private_and_a_symlink_refused() {
    use std::os::unix::fs::PermissionsExt;
    let etcd = started(false);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let out = backup(&dir, &["--etcd-servers", &etcd.endpoint()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode_of(&dir), 0o700);

    let elsewhere = work.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let link = work.path().join("linked");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let out = backup(&link, &["--etcd-servers", &etcd.endpoint()]);
    assert_fails(&out, 1, "a symlink is refused");
    assert!(stderr(&out).contains("linked"), "{}", stderr(&out));
    assert!(common::entries(&elsewhere).is_empty());
}
