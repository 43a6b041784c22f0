//! Encrypted backups end to end against real etcd (TLS, so the backup carries the etcd
//! client key): recipients from `config.toml`'s `[backup]` table and the flags; the
//! backup dir keeps no plain secret; the archive is a tar stream inside age; `list`,
//! `verify`, `inspect` and `recover` open it with `--identity`; a wrong identity is one
//! error line naming the identity file, exit 2, and nothing written.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use common::{assert_fails, kubeboot, mode_of, stderr, stdout, tree};
use kubeboot::backup::catalog;
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn started_tls() -> Etcd {
    let etcd = Etcd::start(EtcdOptions {
        tls: true,
        ..EtcdOptions::default()
    })
    .expect("start etcd");
    cluster::load_into(&etcd).expect("load the test cluster");
    etcd
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kubeboot backup` of `etcd` into `dir` with the TLS flags and `extra`.
fn backup(etcd: &Etcd, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = common::backup_args(etcd, dir);
    args.extend(extra.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    kubeboot(&refs)
}

fn only_backup(dir: &Path) -> PathBuf {
    let found = catalog::scan(dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].dir.clone()
}

#[test]
fn an_encrypted_backup_round_trips_through_list_verify_inspect_and_recover() {
    let etcd = started_tls();
    let tls = etcd.tls().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (id_file, ops) = common::age_key_pair(work.path(), "ops.key");
    let (_, escrow) = common::age_key_pair(work.path(), "escrow.key");
    let recipients = work.path().join("recipients.txt");
    fs::write(&recipients, format!("# escrow\n{escrow}\n")).unwrap();
    let config = work.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[backup]\nrecipient = [{ops:?}]\nrecipients-file = {:?}\n",
            s(&recipients)
        ),
    )
    .unwrap();
    let check = kubeboot(&["--config", s(&config), "config", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    let dir = work.path().join("backups");
    let out = backup(&etcd, &dir, &["--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("encrypted to 2 age recipient(s)"),
        "{}",
        stdout(&out)
    );
    let b = only_backup(&dir);
    assert_eq!(common::entries(&b), ["backup.json", "backup.tar.age"]);
    assert_eq!(mode_of(&b.join("backup.tar.age")), 0o600);
    let m = catalog::read_manifest(&b).unwrap();
    let archive = m.archive.clone().unwrap();
    assert_eq!(archive.recipients, [ops.clone(), escrow.clone()]);
    assert_eq!(m.pki.len(), 3, "the etcd CA, client cert and key");

    // No byte of the client key is kept in the clear.
    let key = fs::read(&tls.client_key).unwrap();
    let body = &key[40..key.len() - 40];
    for name in common::entries(&b) {
        let bytes = fs::read(b.join(&name)).unwrap();
        assert!(!bytes.windows(body.len()).any(|w| w == body), "{name}");
    }

    // The archive is tar inside age: the plain backup's files, its manifest first.
    let id = fs::read_to_string(&id_file).unwrap();
    let identity: age::x25519::Identity = id.lines().nth(1).unwrap().parse().unwrap();
    let file = fs::File::open(b.join("backup.tar.age")).unwrap();
    let plain = age::Decryptor::new(file)
        .unwrap()
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap();
    let mut tar = tar::Archive::new(plain);
    let mut members = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "backup.json" {
            let mut inner = String::new();
            e.read_to_string(&mut inner).unwrap();
            let inner: catalog::Manifest = serde_json::from_str(&inner).unwrap();
            assert_eq!(inner.archive, None);
            assert_eq!(inner.snapshot, m.snapshot);
        }
        members.push(name);
    }
    let mut want = vec!["backup.json".to_string(), "snapshot.db".to_string()];
    want.extend(m.pki.iter().map(|r| r.path.clone()));
    assert_eq!(members, want);

    // list: intact but unopened without a key, whole with it.
    let list = |extra: &[&str]| {
        let mut args = vec!["backup", "--backup-dir", s(&dir), "list", "-o", "json"];
        args.extend_from_slice(extra);
        let out = kubeboot(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["backups"][0].clone()
    };
    let e = list(&[]);
    assert_eq!(e["state"], "encrypted-unverified", "{e}");
    assert_eq!(e["encrypted"], true);
    assert_eq!(e["size"], archive.size);
    assert_eq!(e["locations"][0]["kind"], "local");
    assert_eq!(list(&["--identity", s(&id_file)])["state"], "whole");
    // The [backup] table's recipients reach `backup` ahead of the subcommand's name.
    let out = kubeboot(&[
        "--config",
        s(&config),
        "backup",
        "--backup-dir",
        s(&dir),
        "list",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("encrypted-unverified"),
        "{}",
        stdout(&out)
    );

    let id_name = b.file_name().unwrap().to_str().unwrap();
    let out = kubeboot(&["backup", "--backup-dir", s(&dir), "verify", id_name]);
    assert_fails(&out, 2, "encrypted; give --identity");
    let out = kubeboot(&[
        "backup",
        "--backup-dir",
        s(&dir),
        "verify",
        id_name,
        "--identity",
        s(&id_file),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("whole, restorable"),
        "{}",
        stdout(&out)
    );

    let archive_path = b.join("backup.tar.age");
    let out = kubeboot(&[
        "inspect",
        s(&archive_path),
        "--identity",
        s(&id_file),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revision"].as_i64(), Some(m.revision), "{v}");

    // recover from the archive == recover from the live etcd; no plain copy is left.
    let live = work.path().join("live");
    let restored = work.path().join("restored");
    let endpoint = etcd.endpoint();
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        s(&live),
        "--etcd-servers",
        &endpoint,
        "--etcd-cafile",
        s(&tls.ca_cert),
        "--etcd-certfile",
        s(&tls.client_cert),
        "--etcd-keyfile",
        s(&tls.client_key),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        s(&restored),
        "--etcd-backup-file",
        s(&archive_path),
        "--identity",
        s(&id_file),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut a, mut r) = (tree(&live), tree(&restored));
    a.remove("kubeboot.json");
    r.remove("kubeboot.json");
    assert_eq!(
        a, r,
        "the encrypted backup recovers what the live etcd does"
    );
    assert!(
        !common::entries(work.path())
            .iter()
            .any(|n| n.contains("decrypted")),
        "{:?}",
        common::entries(work.path())
    );
}

#[test]
fn a_wrong_identity_is_one_line_naming_its_file_and_writes_nothing() {
    let etcd = started_tls();
    let work = tempfile::tempdir().unwrap();
    let (_, right) = common::age_key_pair(work.path(), "right.key");
    let (wrong, _) = common::age_key_pair(work.path(), "wrong.key");
    let dir = work.path().join("backups");
    let out = backup(&etcd, &dir, &["--recipient", &right]);
    assert!(out.status.success(), "{}", stderr(&out));
    let archive = only_backup(&dir).join("backup.tar.age");
    let junk = work.path().join("junk.key");
    fs::write(&junk, "AGE-SECRET-KEY-1SECRETJUNK\n").unwrap();
    let before = common::entries(work.path());
    let needle = format!("not encrypted to any identity in {}", wrong.display());

    let target = work.path().join("recovered");
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        s(&target),
        "--etcd-backup-file",
        s(&archive),
        "--identity",
        s(&wrong),
    ]);
    assert_fails(&out, 2, &needle);
    let out = kubeboot(&["inspect", s(&archive), "--identity", s(&wrong)]);
    assert_fails(&out, 2, &needle);
    let out = kubeboot(&[
        "backup",
        "--backup-dir",
        s(&dir),
        "verify",
        s(&archive),
        "--identity",
        s(&wrong),
    ]);
    assert_fails(&out, 2, &needle);
    // Without one, and with a file that is not an identity (its contents never printed).
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        s(&target),
        "--etcd-backup-file",
        s(&archive),
    ]);
    assert_fails(&out, 2, "encrypted with age; give --identity");
    let out = kubeboot(&["inspect", s(&archive), "--identity", s(&junk)]);
    assert_fails(&out, 2, s(&junk));
    assert!(!stderr(&out).contains("SECRETJUNK"), "{}", stderr(&out));

    assert_eq!(
        common::entries(work.path()),
        before,
        "nothing written, nothing left"
    );
    // A recipient that is not one: refused before etcd is read, nothing written.
    let out = backup(&etcd, &dir, &["--recipient", "age1notakey"]);
    assert_fails(&out, 2, "not an age X25519 recipient");
    assert_eq!(catalog::scan(&dir).unwrap().len(), 1);
    // `backup --identity` opens the new archive before the run counts: a key that
    // opens nothing is found at once (the whole backup is kept).
    let out = backup(
        &etcd,
        &dir,
        &["--recipient", &right, "--identity", s(&wrong)],
    );
    assert_fails(&out, 2, &format!("{needle} (the backup was kept)"));
}
