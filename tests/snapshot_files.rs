//! The snapshot reader on files no one here wrote (the auger fixture, a real
//! kube-apiserver's etcd) and on bad input: empty, not bbolt, truncated at many cut
//! points, flipped bytes, wrong sha256, and random mutations (proptest). Every case is
//! a clean one-line error naming the file, never a panic.

mod snapshot_common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Result;
use etcd_client::{CompactionOptions, DeleteOptions};
use kubeboot::snapshot::bbolt::fnv64a;
use kubeboot::snapshot::{Integrity, Options, Problem, Snapshot, SnapshotError};
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};
use proptest::prelude::*;
use snapshot_common::{Rng, bounded, deadline};

const SKIP: Options = Options {
    skip_hash_check: true,
    status: false,
    map_or_exit: None,
};
const CHECK: Options = Options {
    skip_hash_check: false,
    status: false,
    map_or_exit: None,
};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/auger/boltdb")
}

fn fixture_db() -> Vec<u8> {
    std::fs::read(fixture_dir().join("db")).expect("fixture db (shared/ beside the repo)")
}

/// A small real `etcdctl snapshot save` file (with trailer), made once per test binary.
fn small_snapshot() -> &'static [u8] {
    static SNAP: OnceLock<Vec<u8>> = OnceLock::new();
    SNAP.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        bounded(deadline(), move || {
            let _ = tx.send(make_small_snapshot()?);
            Ok(())
        });
        rx.recv().expect("small snapshot")
    })
}

fn make_small_snapshot() -> Result<Vec<u8>> {
    let etcd = Etcd::start(EtcdOptions::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let write = async {
        let mut c = etcd.client().await?;
        let mut rng = Rng(3);
        for i in 0..150 {
            let len = if i % 50 == 7 {
                9000
            } else {
                (rng.next() % 300) as usize
            };
            c.put(format!("/registry/things/t{i:03}"), vec![b'v'; len], None)
                .await?;
        }
        for i in (0..150).step_by(4) {
            c.put(
                format!("/registry/things/t{i:03}"),
                b"second".to_vec(),
                None,
            )
            .await?;
        }
        c.delete(
            "/registry/things/t01",
            Some(DeleteOptions::new().with_prefix()),
        )
        .await?;
        let rev = c
            .put("/compact/here", "x", None)
            .await?
            .header()
            .map_or(0, |h| h.revision());
        c.compact(rev, Some(CompactionOptions::new().with_physical()))
            .await?;
        c.delete("/registry/things/t002", None).await?;
        anyhow::Ok(())
    };
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), write).await })??;
    let file = etcd.temp_dir().join("small.db");
    etcd.snapshot_save(&file)?;
    Ok(std::fs::read(file)?)
}

fn read(bytes: &[u8], opts: &Options) -> Result<Snapshot, SnapshotError> {
    Snapshot::from_bytes("test.db", bytes.to_vec(), opts)
}

fn problem(bytes: &[u8], opts: &Options) -> Problem {
    let err = read(bytes, opts).expect_err("should be refused");
    let msg = err.to_string();
    assert!(msg.starts_with("test.db: ") && !msg.contains('\n'), "{msg}");
    err.problem().cloned().expect("a content problem")
}

#[test]
fn auger_fixture_lists_exactly_keys_txt() {
    let want: Vec<String> = std::fs::read_to_string(fixture_dir().join("keys.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let path = fixture_dir().join("db");
    let snap = Snapshot::open(&path, &SKIP).unwrap();
    let got: Vec<String> = snap
        .prefix(b"")
        .map(|kv| String::from_utf8_lossy(&kv.unwrap().key).into_owned())
        .collect();
    assert_eq!(got, want);
    assert_eq!(snap.integrity(), Integrity::NoTrailerSkipped);
    let ns = snap.get(b"/registry/namespaces/default").unwrap().unwrap();
    assert_eq!(
        (ns.create_revision, ns.mod_revision, ns.version, ns.lease),
        (4, 4, 1, 0)
    );
    let item = std::fs::read(fixture_dir().join("page2item0.bin")).unwrap();
    assert!(ns.value.len() == 126 && item.ends_with(&ns.value));
    assert!(ns.value.starts_with(b"k8s\0"));
    assert!(snap.revision() >= 82703 && snap.compact_revision().is_some());

    let err = Snapshot::open(&path, &CHECK).unwrap_err().to_string();
    assert!(
        err.contains("--skip-hash-check") && err.contains("boltdb/db"),
        "{err}"
    );
}

#[test]
fn empty_and_not_bbolt_are_refused() {
    for opts in [&SKIP, &CHECK] {
        assert_eq!(problem(b"", opts), Problem::Empty);
        let text = "not a database\n".repeat(300).into_bytes();
        assert!(
            matches!(problem(&text, opts), Problem::BadMagic(_)),
            "{:?}",
            problem(&text, opts)
        );
        assert!(matches!(
            problem(b"short", opts),
            Problem::BadMagic(_) | Problem::Truncated { .. }
        ));
    }
    let err = Snapshot::open(std::path::Path::new("/nonexistent/snap.db"), &SKIP).unwrap_err();
    assert!(
        matches!(err, SnapshotError::Io { .. }) && err.to_string().contains("/nonexistent/snap.db")
    );
}

#[test]
fn small_snapshot_reads_and_verifies() {
    let snap = read(small_snapshot(), &CHECK).unwrap();
    assert_eq!(snap.integrity(), Integrity::Verified);
    assert!(
        snap.get(b"/registry/things/t004")
            .unwrap()
            .is_some_and(|kv| kv.value[..] == b"second"[..])
    );
    assert!(
        snap.get(b"/registry/things/t002").unwrap().is_none()
            && snap.get(b"/registry/things/t010").unwrap().is_none()
    );
    assert_eq!(snap.integrity().describe(), "sha256 verified");
    let unchecked = read(small_snapshot(), &SKIP).unwrap();
    assert_eq!(unchecked.integrity(), Integrity::TrailerNotChecked);
}

#[test]
fn wrong_sha256_is_refused() {
    let mut bytes = small_snapshot().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    let p = problem(&bytes, &CHECK);
    assert!(matches!(p, Problem::HashMismatch { .. }) && p.to_string().contains("sha256 mismatch"));
}

#[test]
fn truncated_anywhere_is_refused_or_identical() {
    let full = small_snapshot();
    let body_len = full.len() - 32;
    let whole = read(full, &CHECK).unwrap();
    let cuts = (0..full.len()).step_by(37).chain(
        (0..body_len)
            .step_by(4096)
            .flat_map(|p| [p.saturating_sub(1), p + 1]),
    );
    for cut in cuts.filter(|&c| c < full.len()) {
        let bytes = &full[..cut];
        problem(bytes, &CHECK);
        // Without the hash check a cut may only drop unreachable free pages; then the
        // content must be exactly the same.
        if let Ok(s) = read(bytes, &SKIP) {
            assert!(live(&s) == live(&whole), "cut at {cut} changed the content");
        }
    }
}

#[test]
fn flipped_bytes_are_refused_with_hash_and_never_panic_without() {
    let full = small_snapshot();
    for pos in (0..full.len()).step_by(211) {
        let mut bytes = full.to_vec();
        bytes[pos] ^= 0x41;
        assert!(
            matches!(problem(&bytes, &CHECK), Problem::HashMismatch { .. }),
            "flip at {pos}"
        );
        let _ = read(&bytes, &SKIP);
    }
    let db = fixture_db();
    for pos in 0..db.len() {
        let mut bytes = db.clone();
        bytes[pos] ^= 0xff;
        let _ = read(&bytes, &SKIP);
    }
}

/// A meta field set to `value` with the checksum fixed, so the walk starts somewhere odd.
fn poke_meta(bytes: &mut [u8], field_off: usize, value: u64) {
    for page in [0usize, 4096] {
        let m = page + 16;
        if bytes.len() >= m + 64 {
            bytes[m + field_off..m + field_off + 8].copy_from_slice(&value.to_le_bytes());
            let sum = fnv64a(&bytes[m..m + 56]);
            bytes[m + 56..m + 64].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000), skip in any::<bool>()) {
        let _ = read(&bytes, &Options {
            skip_hash_check: skip,
            status: false,
            map_or_exit: None,
        });
    }

    #[test]
    fn mutated_real_files_never_panic(
        which in 0..2usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        meta in proptest::option::of((prop::sample::select(vec![16usize, 40, 48]), 0u64..64)),
    ) {
        let mut bytes = if which == 0 { fixture_db() } else { small_snapshot()[..small_snapshot().len() - 32].to_vec() };
        if let Some((field, value)) = meta {
            poke_meta(&mut bytes, field, value);
        }
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let _ = read(&bytes, &SKIP);
    }
}

/// Mapping a file (`inspect`, `recover`) and reading it (`ensure`) give the same
/// snapshot, or the same one-line error, for whole, cut, flipped and empty files.
#[test]
fn a_mapped_file_reads_as_a_read_one() {
    let dir = tempfile::tempdir().unwrap();
    let full = small_snapshot();
    let mut flipped = full.to_vec();
    flipped[full.len() / 2] ^= 0x41;
    let cases: [(&str, Vec<u8>, Options); 6] = [
        ("whole", full.to_vec(), CHECK),
        ("whole-unchecked", full.to_vec(), SKIP),
        ("auger", fixture_db(), SKIP),
        ("cut", full[..full.len() / 3].to_vec(), CHECK),
        ("flipped", flipped, CHECK),
        ("empty", Vec::new(), CHECK),
    ];
    for (name, bytes, opts) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let mapped = Options {
            map_or_exit: Some(3),
            ..opts.clone()
        };
        match (Snapshot::open(&path, &opts), Snapshot::open(&path, &mapped)) {
            (Ok(r), Ok(m)) => {
                assert_eq!(r.revision(), m.revision(), "{name}");
                assert_eq!(r.file_sha256(), m.file_sha256(), "{name}");
                assert_eq!(r.integrity(), m.integrity(), "{name}");
                assert!(live(&r) == live(&m), "{name}");
            }
            (Err(r), Err(m)) => assert_eq!(r.to_string(), m.to_string(), "{name}"),
            (r, m) => panic!("{name}: read {:?}, mapped {:?}", r.err(), m.err()),
        }
    }
}

/// Every live key-value of `snap`, decoded.
fn live(snap: &Snapshot) -> Vec<kubeboot::snapshot::KeyValue> {
    snap.prefix(b"").map(Result::unwrap).collect()
}

/// `backup` checks the file it just wrote with the proof its stream made
/// (`Snapshot::open_streamed`): the proof stands for the hash, mapped or read, so the
/// file is not hashed a second time; a proof made for another length stands for
/// nothing, and the file is hashed. The proof's witness: a trailer spoiled after the
/// stream was hashed is only found when the file is hashed again.
#[test]
fn a_streamed_proof_stands_for_the_hash_of_a_file_of_its_length_only() {
    use kubeboot::snapshot::trailer::Streaming;
    let dir = tempfile::tempdir().unwrap();
    let full = small_snapshot();
    let proof_of = |bytes: &[u8]| {
        let mut s = Streaming::default();
        s.update(bytes);
        s.finish().trailer.expect("a whole snapshot's proof")
    };
    let proof = proof_of(full);
    let other = proof_of(&small_snapshot_with_one_more_page(full));
    let mut spoiled = full.to_vec();
    let last = spoiled.len() - 1;
    spoiled[last] ^= 0x55;
    let path = dir.path().join("snapshot.db");
    std::fs::write(&path, &spoiled).unwrap();
    let want = Snapshot::from_bytes("whole", full.to_vec(), &CHECK).unwrap();
    for opts in [
        CHECK,
        Options {
            map_or_exit: Some(3),
            ..CHECK
        },
    ] {
        let s = Snapshot::open_streamed(&path, &opts, proof).unwrap();
        assert_eq!(s.file_sha256(), want.file_sha256(), "{opts:?}");
        assert_eq!(s.integrity(), Integrity::Verified);
        assert!(live(&s) == live(&want), "{opts:?}");
        let err = Snapshot::open_streamed(&path, &opts, other).expect_err("hashed again");
        assert!(
            matches!(err.problem(), Some(Problem::HashMismatch { .. })),
            "{opts:?}: {err}"
        );
    }
}

/// `full` with its body grown by one zeroed page and a trailer made for it: a whole
/// snapshot of another length.
fn small_snapshot_with_one_more_page(full: &[u8]) -> Vec<u8> {
    use kubeboot::snapshot::trailer::TRAILER_LEN;
    use sha2::{Digest, Sha256};
    let body_len = full.len() - TRAILER_LEN;
    let mut grown = full[..body_len].to_vec();
    grown.extend(std::iter::repeat_n(0u8, 4096));
    let sum = Sha256::digest(&grown);
    grown.extend_from_slice(&sum);
    grown
}
