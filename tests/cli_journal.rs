//! What `kubeboot` sends to the journal, through the real binary, without a booted
//! systemd: the testkit's journald stand-in (`tests/testkit/src/journald.rs`) binds the
//! native socket in a temp dir that a private mount namespace puts over `/run`, and
//! `JOURNAL_STREAM` names the file that is the child's stderr, as systemd would name
//! the journal stream it connected. Needs root (`unshare --mount`), as CI runs.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};
use kubeboot_testkit::journald::{Entry, Journald};

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

/// `kubeboot ensure` on a temp node (the kubelet's healthz answers, the api-server is
/// down), with `extra` flags.
fn ensure_args(work: &Path, kubelet: &str, extra: &[&str]) -> Vec<String> {
    let s = |p: &str| work.join(p).to_str().unwrap().to_string();
    let mut v: Vec<String> = vec![
        "ensure".into(),
        "--kubeconfig".into(),
        dead_kubeconfig(work).to_str().unwrap().into(),
        "--kubelet-healthz-url".into(),
        kubelet.into(),
        "--backup-dir".into(),
        s("backups"),
        "--recovery-root".into(),
        s("recovery"),
        "--pod-manifest-path".into(),
        s("manifests"),
        "--bootstrap-secrets-dir".into(),
        s("bootstrap-secrets"),
        "--lock-file".into(),
        s("start.lock"),
        "--etcd-data-dir".into(),
        s("etcd-data"),
        "--request-timeout".into(),
        "2s".into(),
        "--poll-interval".into(),
        "200ms".into(),
        "--etcd-dial-timeout".into(),
        "2s".into(),
        "--kubelet-unit=".into(),
        "--cri-socket=".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// How the child's stderr relates to `JOURNAL_STREAM`.
enum Stream {
    /// Names the child's stderr: systemd connected it to the journal.
    Matching,
    /// Set, but to another stream (a script redirected this child's stderr).
    Other,
    Unset,
}

/// Runs `cmd` (kubeboot, maybe under the journald stand-in's namespace) with stderr in
/// a file; returns its output with that file's contents as stderr.
fn run(mut cmd: Command, work: &Path, stream: Stream, env: &[(&str, &str)]) -> Output {
    let err_path = work.join(format!("stderr-{}", rand_suffix()));
    let err = fs::File::create(&err_path).unwrap();
    let meta = err.metadata().unwrap();
    cmd.env("KUBEBOOT_CONFIG", "/dev/null")
        .env_remove("KUBEBOOT_LOG_TARGET")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::piped())
        .stderr(err);
    match stream {
        Stream::Matching => {
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        Stream::Other => {
            cmd.env(
                "JOURNAL_STREAM",
                format!("{}:{}", meta.dev(), meta.ino() + 1),
            );
        }
        Stream::Unset => {}
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubeboot did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = child.wait_with_output().unwrap();
    out.stderr = fs::read(&err_path).unwrap();
    keep_log("stderr", &out.stderr);
    out
}

/// With `KUBEBOOT_TEST_LOG_DIR` set (by `scripts/test`), appends `bytes` to a file there
/// for the secrets-in-logs scan (docs/testing.md): journal entries are logs too.
fn keep_log(what: &str, bytes: &[u8]) {
    use std::io::Write;
    let Some(dir) = std::env::var_os("KUBEBOOT_TEST_LOG_DIR") else {
        return;
    };
    let name = format!("kubeboot-journal-{}.log", std::process::id());
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&dir).join(name));
    if let Ok(mut f) = file {
        let _ = writeln!(f, "== {what}");
        let _ = f.write_all(bytes);
    }
}

/// Every field of every entry, for [`keep_log`].
fn keep_entries(entries: &[Entry]) {
    let mut text = Vec::new();
    for e in entries {
        for (name, value) in &e.fields {
            text.extend_from_slice(name.as_bytes());
            text.push(b'=');
            text.extend_from_slice(value);
            text.push(b'\n');
        }
        text.push(b'\n');
    }
    keep_log("journal entries", &text);
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn kubeboot_in(j: &Journald, args: &[String]) -> Command {
    let mut c = j.command(env!("CARGO_BIN_EXE_kubeboot"));
    c.args(args);
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The entries whose MESSAGE starts with `prefix`.
fn with_message<'a>(entries: &'a [Entry], prefix: &str) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.get("MESSAGE").is_some_and(|m| m.starts_with(prefix)))
        .collect()
}

/// The one entry whose MESSAGE starts with `prefix`, else a panic listing them all.
fn one<'a>(entries: &'a [Entry], prefix: &str) -> &'a Entry {
    let found = with_message(entries, prefix);
    assert!(
        !found.is_empty(),
        "no entry {prefix:?} in {:#?}",
        entries.iter().map(|e| e.get("MESSAGE")).collect::<Vec<_>>()
    );
    found[0]
}

fn field(e: &Entry, name: &str) -> Option<String> {
    e.get(name)
}

/// A recovery from etcd that `start` cannot finish (no api-server comes up): the
/// decision line, a warning, the steps and the error line are native entries with the
/// priority of their level and their KUBEBOOT_* fields; nothing goes to stderr.
#[test]
fn under_systemd_ensure_sends_native_entries_with_priorities_and_fields() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let work = tempfile::tempdir().unwrap();
    let kubelet = common::healthz();
    // A temp file a killed write left beside the secrets dir: `start` removes it with
    // a warning.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    fs::write(work.path().join(format!(".x.tmp-{pid}")), b"left").unwrap();

    let j = Journald::start().unwrap();
    let args = ensure_args(
        work.path(),
        &kubelet,
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--boot-grace",
            "0s",
            "--timeout",
            "3s",
        ],
    );
    let out = run(kubeboot_in(&j, &args), work.path(), Stream::Matching, &[]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "every line went to the journal");
    let entries = j.wait_for(Duration::from_secs(5), |e| {
        !with_message(e, "kubeboot: error:").is_empty()
    });
    keep_entries(&entries);
    assert!(j.refused().is_empty(), "journald drops {:?}", j.refused());

    for e in &entries {
        assert_eq!(
            field(e, "KUBEBOOT_COMMAND").as_deref(),
            Some("ensure"),
            "{e:?}"
        );
        assert_eq!(field(e, "SYSLOG_IDENTIFIER").as_deref(), Some("kubeboot"));
        assert!(field(e, "PRIORITY").is_some(), "{e:?}");
    }

    let decided = one(&entries, "recovering: ");
    assert_eq!(field(decided, "PRIORITY").as_deref(), Some("6"));
    assert_eq!(
        field(decided, "KUBEBOOT_DECISION").as_deref(),
        Some("recover")
    );
    assert_eq!(field(decided, "KUBEBOOT_SOURCE").as_deref(), Some("etcd"));
    assert_eq!(field(decided, "KUBEBOOT_STEP").as_deref(), Some("recover"));
    let msg = field(decided, "MESSAGE").unwrap();
    assert!(msg.contains("the api-server is down"), "{msg}");

    let warned = one(&entries, "removed ");
    assert!(
        field(warned, "MESSAGE")
            .unwrap()
            .ends_with("(left by a killed write)")
    );
    assert_eq!(field(warned, "PRIORITY").as_deref(), Some("4"));
    assert_eq!(field(warned, "KUBEBOOT_STEP").as_deref(), Some("install"));

    let read = one(&entries, "reading etcd");
    assert_eq!(field(read, "KUBEBOOT_SOURCE").as_deref(), Some("etcd"));
    let waited = one(&entries, "waiting for the api-server at");
    assert_eq!(
        field(waited, "KUBEBOOT_STEP").as_deref(),
        Some("wait-apiserver")
    );
    assert_eq!(field(waited, "PRIORITY").as_deref(), Some("6"));
    assert_eq!(field(waited, "KUBEBOOT_DECISION"), None);

    let failed = one(&entries, "kubeboot: error: ");
    assert_eq!(field(failed, "PRIORITY").as_deref(), Some("3"));
    assert_eq!(field(failed, "KUBEBOOT_EXIT").as_deref(), Some("1"));
    // A start that failed after the decision to recover is not a decision.
    assert_eq!(field(failed, "KUBEBOOT_DECISION"), None);
    assert!(
        field(failed, "MESSAGE").unwrap().contains("gave up after"),
        "{failed:?}"
    );
}

/// Waiting within the boot grace, then nothing to recover from: the waits say
/// `wait`, the error line says `no-source` and the exit code.
#[test]
fn the_decision_a_failed_ensure_ended_on_is_on_its_error_line() {
    let work = tempfile::tempdir().unwrap();
    let kubelet = common::healthz();
    let j = Journald::start().unwrap();
    let args = ensure_args(work.path(), &kubelet, &["--boot-grace", "1s"]);
    let out = run(kubeboot_in(&j, &args), work.path(), Stream::Matching, &[]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let entries = j.wait_for(Duration::from_secs(5), |e| {
        !with_message(e, "kubeboot: error:").is_empty()
    });
    keep_entries(&entries);
    let waits: Vec<&Entry> = entries
        .iter()
        .filter(|e| field(e, "KUBEBOOT_DECISION").as_deref() == Some("wait"))
        .collect();
    assert!(!waits.is_empty(), "{entries:#?}");
    for w in waits {
        assert!(
            field(w, "MESSAGE").unwrap().contains("(boot grace 1s)"),
            "{w:?}"
        );
        assert_eq!(field(w, "KUBEBOOT_STEP").as_deref(), Some("check"));
        assert_eq!(field(w, "PRIORITY").as_deref(), Some("6"));
    }
    let failed = one(&entries, "kubeboot: error: ");
    assert_eq!(field(failed, "PRIORITY").as_deref(), Some("3"));
    assert_eq!(
        field(failed, "KUBEBOOT_DECISION").as_deref(),
        Some("no-source")
    );
    assert_eq!(field(failed, "KUBEBOOT_EXIT").as_deref(), Some("3"));
    assert!(
        field(failed, "MESSAGE")
            .unwrap()
            .contains("no etcd endpoints are configured")
    );
}

/// stderr whenever stderr is not the journal's stream or the operator says so, and
/// when the journal's socket is not there; its text lines are the ones they always
/// were (no journal fields in them).
#[test]
fn stderr_unless_stderr_is_the_journal_stream() {
    let work = tempfile::tempdir().unwrap();
    let kubelet = common::healthz();
    let args = ensure_args(work.path(), &kubelet, &["--boot-grace", "0s"]);
    let plain_stderr = |out: &Output| {
        assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(out));
        let err = stderr(out);
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("kubeboot: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(
            errors[0].contains("no etcd endpoints are configured"),
            "{err}"
        );
        for f in ["decision=", "step=", "source=", "KUBEBOOT_"] {
            assert!(!err.contains(f), "{f} in {err}");
        }
    };
    type Env<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Stream, Vec<String>, Env); 4] = [
        ("another stream", Stream::Other, args.clone(), vec![]),
        ("unset", Stream::Unset, args.clone(), vec![]),
        (
            "--log-target stderr",
            Stream::Matching,
            [
                vec!["--log-target".to_string(), "stderr".into()],
                args.clone(),
            ]
            .concat(),
            vec![],
        ),
        (
            "KUBEBOOT_LOG_TARGET=stderr",
            Stream::Matching,
            args.clone(),
            vec![("KUBEBOOT_LOG_TARGET", "stderr")],
        ),
    ];
    for (what, stream, argv, env) in cases {
        let j = Journald::start().unwrap();
        let out = run(kubeboot_in(&j, &argv), work.path(), stream, &env);
        plain_stderr(&out);
        assert!(j.entries().is_empty(), "{what}: {:?}", j.entries());
    }

    // `--log-target journal` needs no stream.
    let j = Journald::start().unwrap();
    let argv = [
        vec!["--log-target".to_string(), "journal".into()],
        args.clone(),
    ]
    .concat();
    let out = run(kubeboot_in(&j, &argv), work.path(), Stream::Unset, &[]);
    assert_eq!(stderr(&out), "");
    let entries = j.wait_for(Duration::from_secs(5), |e| {
        !with_message(e, "kubeboot: error:").is_empty()
    });
    keep_entries(&entries);
    one(&entries, "kubeboot: error: ");

    // The stream says journal, but no journald listens: stderr, saying why.
    let j = Journald::start().unwrap();
    fs::remove_file(j.socket_path()).unwrap();
    let out = run(kubeboot_in(&j, &args), work.path(), Stream::Matching, &[]);
    plain_stderr(&out);
    assert!(
        stderr(&out).contains("the journal's socket /run/systemd/journal/socket:"),
        "{}",
        stderr(&out)
    );
}

/// Under systemd the error line is also the last `STATUS=`, so `systemctl status` of a
/// failed unit says why it failed, not which step it was on (the `kubelet-unit-failed`
/// machine drill reads it from a real systemd).
#[test]
fn the_error_line_is_the_last_status_sent_to_systemd() {
    use std::os::unix::net::UnixDatagram;
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let missing = tmp.path().join("gone.db");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(["inspect", missing.to_str().unwrap()])
        .env("KUBEBOOT_CONFIG", "/dev/null")
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let mut last = None;
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        last = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let last = last.expect("nothing was sent to NOTIFY_SOCKET");
    assert!(
        last.starts_with("STATUS=kubeboot: error: ") && last.contains("gone.db"),
        "{last}"
    );
    assert!(!last.contains('\n'), "{last:?}");
}
