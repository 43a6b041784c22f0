//! `kubeboot inspect` and `kubeboot decode` on real data no one here wrote
//! (`tests/data/auger`), through the real binary.

mod common;

use common::{assert_fails, fixtures, kubeboot, stdout};

/// `kubeboot inspect <the auger fixture db> --skip-hash-check EXTRA...` (a raw data-dir
/// db has no sha256 trailer).
fn inspect_fixture_db(extra: &[&str]) -> std::process::Output {
    let db = fixtures().join("auger/boltdb/db");
    let mut args = vec!["inspect", db.to_str().unwrap(), "--skip-hash-check"];
    args.extend_from_slice(extra);
    kubeboot(&args)
}

#[test]
fn inspect_lists_exactly_the_fixture_keys() {
    let out = inspect_fixture_db(&["--keys"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let want = std::fs::read_to_string(fixtures().join("auger/boltdb/keys.txt")).unwrap();
    let mut want: Vec<&str> = want.lines().filter(|l| !l.is_empty()).collect();
    want.sort();
    let got = stdout(&out);
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
}

#[test]
fn inspect_keys_with_prefix() {
    let out = inspect_fixture_db(&["--keys", "--prefix", "/registry/pods/"]);
    assert_eq!(stdout(&out), "/registry/pods/default/pi-dqtsw\n");
}

#[test]
fn inspect_summary_reports_missing_trailer_and_counts() {
    let out = inspect_fixture_db(&[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("revision:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("pods") && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("(outside the prefix)") && l.ends_with(" 1")),
        "{text}"
    );
}

#[test]
fn a_raw_db_needs_skip_hash_check() {
    let db = fixtures().join("auger/boltdb/db");
    let out = kubeboot(&["inspect", db.to_str().unwrap()]);
    assert_fails(&out, 3, "--skip-hash-check");
}

#[test]
fn inspect_get_decodes_the_pod_like_the_fixture() {
    let out = inspect_fixture_db(&["--get", "/registry/pods/default/pi-dqtsw", "-o", "json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["kind"], "Pod");
    assert_eq!(got["metadata"]["name"], "pi-dqtsw");
}

#[test]
fn inspect_get_raw_prints_the_stored_bytes() {
    let out = inspect_fixture_db(&["--get", "/registry/namespaces/default", "-o", "raw"]);
    assert!(out.status.success());
    assert!(
        out.stdout.starts_with(b"k8s\0"),
        "{:?}",
        &out.stdout[..8.min(out.stdout.len())]
    );
}

#[test]
fn inspect_get_missing_key_is_a_one_line_error() {
    let out = inspect_fixture_db(&["--get", "/nope"]);
    assert_fails(&out, 1, "/nope");
}

#[test]
fn decode_matches_the_fixture_json() {
    for name in ["pod", "job"] {
        let bin = fixtures().join(format!("auger/storage/{name}.bin"));
        let out = kubeboot(&["decode", bin.to_str().unwrap(), "-o", "json"]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures().join(format!("auger/json/{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn decode_yaml_is_the_default() {
    let bin = fixtures().join("auger/storage/job.bin");
    let out = kubeboot(&["decode", bin.to_str().unwrap()]);
    let text = stdout(&out);
    // As kubectl prints it (issue 15, finding 14): sorted keys, so apiVersion, kind,
    // metadata first; a timestamp quoted, as YAML 1.1 readers would take it for one.
    assert!(
        text.starts_with("apiVersion: batch/v1\nkind: Job\nmetadata:\n"),
        "{text}"
    );
    assert!(text.contains("  creationTimestamp: \"20"), "{text}");
}

#[test]
fn bad_input_gets_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert_fails(&kubeboot(&["inspect", empty.to_str().unwrap()]), 3, "empty");
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"k8s\0\x0a\x03xyz garbage").unwrap();
    assert_fails(
        &kubeboot(&["decode", garbage.to_str().unwrap()]),
        1,
        "garbage",
    );
    // Issue 15, finding 6: a missing input is 3 in decode as in inspect (was 2).
    assert_fails(
        &kubeboot(&["decode", "/nonexistent/file"]),
        3,
        "/nonexistent/file",
    );
    let missing = kubeboot(&["inspect", "/nonexistent/snap.db"]);
    assert_fails(&missing, 3, "/nonexistent/snap.db");
}

/// Issue 15, finding 4: a cut-short file was called "missing sha256 trailer … pass
/// --skip-hash-check", which pushed the operator to turn integrity off.
#[test]
fn a_truncated_file_is_named_truncated_before_any_trailer_advice() {
    let db = std::fs::read(fixtures().join("auger/boltdb/db")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let cut = t.path().join("cut.db");
    std::fs::write(&cut, &db[..10_000]).unwrap();
    for extra in [&[][..], &["--skip-hash-check"]] {
        let mut args = vec!["inspect", cut.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = kubeboot(&args);
        assert_fails(&out, 3, "truncated:");
        assert!(!common::stderr(&out).contains("--skip-hash-check"));
    }
}

/// Issue 15, finding 5: the OS error was printed twice.
#[test]
fn an_os_error_is_printed_once() {
    let out = kubeboot(&["inspect", "/nonexistent/kubeboot-test.db"]);
    let err = common::stderr(&out);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Issue 15, finding 2: `kubeboot inspect F --keys | head -1` printed
/// `kubeboot: error: Broken pipe` and exited 1. A reader that went away is not an error.
#[test]
fn a_closed_stdout_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let db = fixtures().join("auger/boltdb/db");
    for args in [
        &["--keys"][..],
        &[],
        &["--get", "/registry/pods/default/pi-dqtsw"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
            .args(["inspect", db.to_str().unwrap(), "--skip-hash-check"])
            .args(args)
            .env("KUBEBOOT_CONFIG", "/dev/null")
            .stdout(writer.try_clone().unwrap())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            common::stderr(&out)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", common::stderr(&out));
    }
}

/// Issue 15, findings 3 and 10: one output contract. The summary and `--keys` print
/// text, json or yaml (`-w` as in etcdctl); `--get` prints yaml, json or raw; a format
/// that does not apply is refused by name, never ignored. The summary carries what
/// `etcdctl snapshot status` prints, labelled apart from the live-key count.
#[test]
fn every_inspect_mode_takes_the_formats_that_apply_to_it() {
    let out = inspect_fixture_db(&["-o", "json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["liveKeys"], 4, "{summary}");
    assert_eq!(summary["resources"]["pods"], 1, "{summary}");
    assert_eq!(summary["size"], 20480, "{summary}");
    // Every revision of every key plus etcd's own records: not the live count.
    assert_eq!(summary["etcdctl"]["totalKey"], 10, "{summary}");
    assert_eq!(summary["etcdctl"]["totalSize"], 20480, "{summary}");
    assert!(summary["etcdctl"]["hash"].is_u64(), "{summary}");

    let yaml = inspect_fixture_db(&["-w", "yaml"]);
    assert!(yaml.status.success(), "{}", common::stderr(&yaml));
    let from_yaml: serde_json::Value = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(from_yaml, summary);

    let text = stdout(&inspect_fixture_db(&[]));
    assert!(text.contains("total keys:  10 (every revision"), "{text}");
    assert!(text.contains("live keys:   4 (the latest value"), "{text}");

    let keys = inspect_fixture_db(&["--keys", "--prefix", "/registry/pods/", "-o", "json"]);
    assert!(keys.status.success(), "{}", common::stderr(&keys));
    let keys: Vec<String> = serde_json::from_slice(&keys.stdout).unwrap();
    assert_eq!(keys, ["/registry/pods/default/pi-dqtsw"]);

    assert_fails(
        &inspect_fixture_db(&["--keys", "-o", "raw"]),
        2,
        "-o raw applies to --get only",
    );
    assert_fails(
        &inspect_fixture_db(&["-o", "raw"]),
        2,
        "-o raw applies to --get only",
    );
    assert_fails(
        &inspect_fixture_db(&["--get", "/registry/namespaces/default", "-o", "text"]),
        2,
        "inspect --get prints yaml, json or raw",
    );
}

/// Issue 15, finding 3: `decode --help` listed `raw`, which `decode` refused.
#[test]
fn decode_offers_only_what_it_prints() {
    let help = stdout(&kubeboot(&["decode", "--help"]));
    assert!(help.contains("[possible values: yaml, json]"), "{help}");
    let out = kubeboot(&["decode", "-o", "raw", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
}

/// A stream is refused by name, not read as a damaged snapshot after the encryption
/// check took its first bytes; a directory likewise. A file given as /dev/stdin is read.
#[test]
fn a_pipe_or_a_directory_is_refused_naming_what_it_is() {
    use std::io::Write;
    let db = fixtures().join("auger/boltdb/db");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(["inspect", "/dev/stdin", "--skip-hash-check"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit before reading it all: a broken pipe here is expected.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&db).unwrap());
    let out = child.wait_with_output().unwrap();
    assert_fails(
        &out,
        2,
        "/dev/stdin: not a regular file (a pipe or a device); inspect reads a snapshot file",
    );
    let dir = db.parent().unwrap().to_str().unwrap().to_string();
    assert_fails(
        &kubeboot(&["inspect", &dir]),
        2,
        &format!("{dir}: a directory;"),
    );
    let redirected = std::process::Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(["inspect", "/dev/stdin", "--skip-hash-check"])
        .stdin(std::fs::File::open(&db).unwrap())
        .output()
        .unwrap();
    assert!(
        redirected.status.success(),
        "{}",
        common::stderr(&redirected)
    );
}
