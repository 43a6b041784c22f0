use std::fs;

use age::secrecy::ExposeSecret;

use super::*;
use crate::backup::catalog::{FORMAT, FileRecord, MANIFEST, SNAPSHOT, hash_file};

fn record(dir: &Path, path: &str, bytes: &[u8]) -> FileRecord {
    let file = dir.join(path);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, bytes).unwrap();
    let (size, sha256) = hash_file(&file).unwrap();
    FileRecord {
        path: path.into(),
        source: None,
        size,
        sha256,
    }
}

/// A plain backup in `dir`: a snapshot and one PKI file, with its manifest.
fn plain(dir: &Path) -> Manifest {
    fs::create_dir_all(dir).unwrap();
    let m = Manifest {
        format: FORMAT,
        kubeboot_version: "test".into(),
        taken_at: "2026-11-26T02:30:00Z".into(),
        etcd_endpoints: vec![],
        revision: 9,
        keys: 3,
        snapshot: record(dir, SNAPSHOT, b"snapshot bytes"),
        components: vec![],
        self_hosted_etcd: false,
        pki: vec![record(dir, "pki/etc/etcd/client.key", b"KEY")],
        archive: None,
    };
    fs::write(dir.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
    m
}

/// The same, sealed as a backup run seals it; returns the manifest and an identity
/// file that opens it.
fn encrypted(dir: &Path, keys: &Path) -> (Manifest, PathBuf) {
    let m = plain(dir);
    let id = age::x25519::Identity::generate();
    let id_file = keys.join("id.txt");
    fs::write(&id_file, id.to_string().expose_secret().as_bytes()).unwrap();
    let m = crate::backup::seal(dir, m, &[id.to_public()]).unwrap();
    fs::write(dir.join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
    (m, id_file)
}

#[test]
fn a_sealed_backup_keeps_no_plain_file() {
    let t = tempfile::tempdir().unwrap();
    let b = t.path().join("20261126T023000Z-r9");
    let (m, _) = encrypted(&b, t.path());
    let mut names: Vec<String> = fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [MANIFEST, crypt::ARCHIVE]);
    let a = m.archive.as_ref().unwrap();
    assert_eq!(a.encryption, "age");
    assert_eq!(m.size_on_disk(), a.size);
    // ensure's reader passes over it rather than reading a snapshot that is not there.
    let err = catalog::verify(&b, &m).unwrap_err();
    assert!(err.contains("encrypted with age"), "{err}");
}

#[test]
fn states_of_plain_and_encrypted_backups() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("plain");
    let m = plain(&p);
    assert_eq!(check(&p, &m, None), (State::Whole, None));
    fs::write(p.join("pki/etc/etcd/client.key"), b"KEX").unwrap();
    let (state, why) = check(&p, &m, None);
    assert_eq!(state, State::Damaged);
    assert!(why.unwrap().contains("client.key: sha256"));

    let e = t.path().join("enc");
    let keys = tempfile::tempdir().unwrap();
    let (m, id_file) = encrypted(&e, keys.path());
    let (state, why) = check(&e, &m, None);
    assert_eq!(state, State::EncryptedUnverified);
    assert!(why.unwrap().contains("give --identity"));
    let id = Identity::load(&id_file).unwrap();
    assert_eq!(check(&e, &m, Some(&id)), (State::Whole, None));
    let snap = open(&e, &m, Some(&id), true).unwrap().unwrap();
    assert_eq!(snap, b"snapshot bytes");

    // Another identity: still intact, not opened; the message names the identity file.
    let other = keys.path().join("other.txt");
    let o = age::x25519::Identity::generate();
    fs::write(&other, o.to_string().expose_secret().as_bytes()).unwrap();
    let (state, why) = check(&e, &m, Some(&Identity::load(&other).unwrap()));
    assert_eq!(state, State::EncryptedUnverified);
    assert!(why.unwrap().ends_with(&format!(
        "not encrypted to any identity in {}",
        other.display()
    )));

    // A manifest whose member record differs from what the archive holds.
    let mut wrong = m.clone();
    wrong.pki[0].sha256 = "00".into();
    let (state, why) = check(&e, &wrong, Some(&id));
    assert_eq!(state, State::Damaged);
    assert!(why.unwrap().contains("pki/etc/etcd/client.key: sha256"));

    // A flipped byte of ciphertext is found without any key.
    let archive = e.join(crypt::ARCHIVE);
    let mut bytes = fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&archive, bytes).unwrap();
    assert_eq!(check(&e, &m, None).0, State::Damaged);
}

fn entry(id: &str, age_seconds: i64, state: State) -> Entry {
    Entry {
        id: id.into(),
        taken_at: String::new(),
        age_seconds,
        revision: 1,
        keys: None,
        size: 0,
        encrypted: false,
        state,
        reason: (state == State::Damaged).then(|| "x: sha256".to_string()),
        locations: vec![],
    }
}

#[test]
fn freshness_needs_a_recent_usable_newest_backup() {
    let two_hours = Duration::from_secs(7200);
    assert_eq!(freshness(&[], two_hours), Err("no backup".into()));
    let ok = [entry("new", 600, State::Whole)];
    assert!(
        freshness(&ok, two_hours)
            .unwrap()
            .contains("new is 600s old")
    );
    let sealed = [entry("new", 600, State::EncryptedUnverified)];
    assert!(freshness(&sealed, two_hours).is_ok());
    let old = [entry("old", 7201, State::Whole)];
    let err = freshness(&old, two_hours).unwrap_err();
    assert_eq!(
        err,
        "the newest whole backup old is 7201s old, older than --max-age (7200s)"
    );
    // A fresh whole backup does not hide that the newest one rotted.
    let rotted = [
        entry("newest", 60, State::Damaged),
        entry("older", 600, State::Whole),
    ];
    let err = freshness(&rotted, two_hours).unwrap_err();
    assert_eq!(err, "the newest backup newest is damaged: x: sha256");
}

#[test]
fn verify_targets_resolve_by_id_dir_or_file() {
    let t = tempfile::tempdir().unwrap();
    let id = "20261126T023000Z-r9";
    let b = t.path().join(id);
    plain(&b);
    assert_eq!(resolve(t.path(), id), Ok(Target::Backup(b.clone())));
    let s = b.to_str().unwrap();
    assert_eq!(resolve(t.path(), s), Ok(Target::Backup(b.clone())));
    let snap = b.join(SNAPSHOT);
    assert_eq!(
        resolve(t.path(), snap.to_str().unwrap()),
        Ok(Target::Backup(b.clone()))
    );
    let lone = t.path().join("copy.db");
    fs::write(&lone, b"x").unwrap();
    assert_eq!(
        resolve(t.path(), lone.to_str().unwrap()),
        Ok(Target::File(lone))
    );
    let err = resolve(t.path(), "20261126T023000Z-r10").unwrap_err();
    assert!(
        err.ends_with("20261126T023000Z-r10: no such backup"),
        "{err}"
    );
    assert!(resolve(t.path(), "/nonexistent/x").is_err());
}

#[test]
fn store_copies_join_their_local_backup_or_stand_alone_newest_first() {
    let now: Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
    let mut here = entry("20261203T100000Z-r20", 7200, State::Whole);
    here.revision = 20;
    here.locations = vec![Copy {
        location: Location::Local {
            path: "/b/20261203T100000Z-r20".into(),
        },
        state: State::Whole,
    }];
    let copy = |name: &str, whole: bool| RemoteCopy {
        name: name.into(),
        url: format!("s3://b/p/{name}"),
        whole,
        manifest: None,
    };
    let merged = with_remote(
        vec![here],
        &[
            copy("20261203T100000Z-r20", true),
            // Only in the store: the master that took it is gone.
            copy("20261203T110000Z-r30", true),
            // An upload that did not finish.
            copy("20261203T113000Z-r35", false),
            copy("not-a-backup", true),
        ],
        now,
    );
    let got: Vec<(&str, i64, State, Vec<&str>)> = merged
        .iter()
        .map(|e| {
            (
                e.id.as_str(),
                e.revision,
                e.state,
                e.locations.iter().map(|c| c.location.kind()).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "20261203T113000Z-r35",
                35,
                State::Incomplete,
                vec!["remote"]
            ),
            ("20261203T110000Z-r30", 30, State::Uploaded, vec!["remote"]),
            (
                "20261203T100000Z-r20",
                20,
                State::Whole,
                vec!["local", "remote"]
            ),
        ]
    );
    assert_eq!(merged[1].age_seconds, 3600);
    assert_eq!(merged[2].locations[1].state, State::Uploaded);
    // Freshness: an unfinished upload is not a backup to count on, nor a damaged one.
    assert!(
        freshness(&merged, Duration::from_secs(2 * 3600))
            .unwrap()
            .contains("-r30")
    );
}
