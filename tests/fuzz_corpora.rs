//! The fuzz corpora replayed as plain tests, on the stable toolchain (docs/testing.md,
//! "Fuzzing"): every file of every committed corpus (`fuzz/corpus/TARGET/`) and every
//! kept crash input (`fuzz/regressions/TARGET/`) goes through the same entry point the
//! fuzz target calls (`fuzz/src/lib.rs`, included here), and none may panic.
//!
//! `make_seed_corpora` (ignored) wrote the seeds the corpora grew from, out of the
//! repo's fixtures and a real `etcdctl snapshot save` of the test cluster:
//! `FUZZ_SEED_DIR=fuzz/corpus cargo test --test fuzz_corpora -- --ignored`.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

/// Every target, by the name of its corpus dir (the same as its `fuzz_targets/` file).
const TARGETS: [(&str, Target); 8] = [
    ("bbolt", harness::bbolt),
    ("mvcc", harness::mvcc),
    ("codec", harness::codec),
    ("encryption_config", harness::encryption_config),
    ("kubeconfig", harness::kubeconfig),
    ("config_toml", harness::config_toml),
    ("kubelet_pods", harness::kubelet_pods),
    ("cri", harness::cri),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_and_kept_crash_replays_without_panic() {
    let mut total = 0;
    for (name, target) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty or missing: every target keeps its corpus"
        );
        let kept = files(&fuzz_dir().join("regressions").join(name));
        for file in corpus.iter().chain(&kept) {
            let data = std::fs::read(file).unwrap();
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name}: {} panicked", file.display());
            total += 1;
        }
    }
    eprintln!("replayed {total} inputs");
}

/// Each target's dir under `fuzz_targets/` has a corpus here, and the other way round.
#[test]
fn every_fuzz_target_is_replayed() {
    let mut targets: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    targets.sort();
    let mut replayed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    replayed.sort();
    assert_eq!(targets, replayed);
}

mod fuzz_seeds;

#[test]
#[ignore = "writes the seed corpora; run by hand (needs etcd, see the module doc)"]
fn make_seed_corpora() {
    let out = std::env::var_os("FUZZ_SEED_DIR").map(PathBuf::from);
    let out = out.expect("set FUZZ_SEED_DIR to the corpus root (fuzz/corpus)");
    fuzz_seeds::write_all(&out).unwrap();
}
