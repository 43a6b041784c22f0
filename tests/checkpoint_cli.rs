//! `kubeboot checkpoint` as a process, without an api-server or a kubelet: bad input is
//! exit 2 with one line naming what is wrong; a second checkpointer waits for the lock
//! as a ready standby (sd-notify `READY=1` and `STATUS=`) and takes over when it is
//! released; each distinct error is logged once, not every cycle; `WATCHDOG=1` is sent
//! when systemd asks for it; SIGTERM stops it with exit 0.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const SIGTERM: i32 = 15;

fn kubeboot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot"));
    for var in [
        "NODE_NAME",
        "POD_NAME",
        "POD_NAMESPACE",
        "HOST_IP",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ] {
        c.env_remove(var);
    }
    c.arg("checkpoint").stdin(Stdio::null());
    c
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A kubeconfig that parses but reaches nothing.
fn dead_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            closed_port()
        ),
    )
    .unwrap();
    path
}

fn run(cmd: &mut Command) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "kubeboot checkpoint did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

#[test]
fn missing_node_name_is_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let out = run(kubeboot().arg(format!(
        "--kubeconfig={}",
        dead_kubeconfig(t.path()).display()
    )));
    common::assert_fails(&out, 2, "--node-name (or NODE_NAME) is required");
    // The environment variable works in its place; a pod name without its namespace does not.
    let out = run(kubeboot()
        .env("NODE_NAME", "m1")
        .env("POD_NAME", "pod-checkpointer-abcde"));
    common::assert_fails(&out, 2, "POD_NAMESPACE");
}

#[test]
fn a_missing_kubeconfig_is_a_usage_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope/kubeconfig");
    let out = run(kubeboot()
        .arg("--node-name=m1")
        .arg(format!("--kubeconfig={}", missing.display()))
        .arg(format!("--lock-file={}", t.path().join("lock").display())));
    common::assert_fails(&out, 2, &missing.display().to_string());
    assert!(
        !t.path().join("lock").exists(),
        "the lock was taken before the config was checked"
    );
}

/// Receives sd-notify datagrams until `f` is satisfied with the ones so far.
fn until_notified(
    sock: &UnixDatagram,
    got: &mut Vec<String>,
    what: &str,
    f: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !f(got) {
        assert!(
            Instant::now() < deadline,
            "no {what} from sd-notify; got {got:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn waits_for_the_lock_then_takes_over_logs_each_error_once_and_stops_on_sigterm() {
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("run/kubeboot/checkpointer.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let held = kubeboot::fsutil::LockFile::try_acquire(&lock).unwrap();
    let sock_path = t.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = t.path().join("stderr.log");
    let kubelet = format!("http://127.0.0.1:{}", closed_port());
    let child = kubeboot()
        .arg("--node-name=m1")
        .arg(format!(
            "--kubeconfig={}",
            dead_kubeconfig(t.path()).display()
        ))
        .arg(format!("--lock-file={}", lock.display()))
        .arg(format!(
            "--pod-manifest-path={}",
            t.path().join("manifests").display()
        ))
        .arg(format!(
            "--checkpoint-dir={}",
            t.path().join("checkpoints").display()
        ))
        .arg(format!(
            "--cri-socket={}",
            t.path().join("absent.sock").display()
        ))
        .arg("--kubelet-url=")
        .arg(format!("--kubelet-read-only-url={kubelet}"))
        .arg("--interval=100ms")
        .arg("--request-timeout=1s")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "10000000")
        // A host without ca-certificates (a minbase Debian master): the plain-http
        // read-only client once loaded the system's trust store and failed at start.
        .env("SSL_CERT_FILE", t.path().join("no-ca-bundle.pem"))
        .env("SSL_CERT_DIR", t.path().join("no-ca-dir"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let mut got = Vec::new();
    until_notified(&sock, &mut got, "standby READY=1", |g| {
        g.iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=standby"))
    });
    // A standby writes nothing and keeps waiting.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "exited while waiting for the lock"
    );
    assert!(!t.path().join("checkpoints").exists());
    // The daemon runs as the checkpointer's own binary from beside kubeboot, in the
    // same process (the PID systemd and its notify socket know), under the same argv.
    let pid = child.0.id();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let beside =
        std::path::Path::new(env!("CARGO_BIN_EXE_kubeboot")).with_file_name("kubeboot-checkpoint");
    assert_eq!(exe, beside);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert_eq!(argv[0], env!("CARGO_BIN_EXE_kubeboot").as_bytes());
    assert_eq!(argv[1], b"checkpoint");

    drop(held);
    got.clear();
    until_notified(&sock, &mut got, "a status after taking over", |g| {
        g.iter()
            .filter(|m| m.starts_with("STATUS=0 checkpoints"))
            .count()
            >= 5
    });
    assert!(got.iter().any(|m| m == "WATCHDOG=1"), "{got:?}");
    let status = got
        .iter()
        .find(|m| m.starts_with("STATUS=0 checkpoints"))
        .unwrap();
    assert!(
        status.contains("api-server unreachable") && status.contains("runtime unreachable"),
        "{status}"
    );

    kubeboot_testkit::kubelet::process::signal_pid(child.0.id(), SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop it");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("standby"), "{text}");
    assert!(text.contains("took over the lock"), "{text}");
    // Five cycles at least, each failing the same way: logged once each, the CRI
    // socket's reason and the kubelet's in one line.
    for needle in [
        "listing pods on node m1",
        "what runs here is unknown: CRI socket",
        "does not exist",
        "kubelet unreachable: http",
    ] {
        assert_eq!(text.matches(needle).count(), 1, "{needle}:\n{text}");
    }
}

/// The secure kubelet port gets the kubeconfig's credentials only after its certificate
/// is verified: with no CA to verify it against, the checkpointer refuses to start.
/// `kubeboot-checkpoint` runs `checkpoint` and refuses every other command.
#[test]
fn the_checkpointer_s_binary_runs_only_checkpoint() {
    let out =
        run(Command::new(env!("CARGO_BIN_EXE_kubeboot-checkpoint")).args(["inspect", "x.db"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim()
            == "kubeboot: error: kubeboot-checkpoint runs only `checkpoint`; `inspect` is a command of kubeboot",
        "{err}"
    );
}

#[test]
fn a_secure_kubelet_url_without_a_ca_is_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let out = run(kubeboot()
        .arg("--node-name=m1")
        .arg(format!(
            "--kubeconfig={}",
            dead_kubeconfig(t.path()).display()
        ))
        .arg(format!("--lock-file={}", t.path().join("lock").display()))
        .arg(format!("--kubelet-url=https://127.0.0.1:{}", closed_port())));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--kubelet-ca-file"), "{err}");
}

/// The DaemonSet `kubeboot render` writes: every path the checkpointer opens is in its
/// argv (the test kubelet maps mounts by rewriting argv, so a default would point at the
/// host's real /etc/kubernetes), under one of its mounts, and the host checkpoint dir
/// is where that mount comes from; kubeboot's own CLI accepts the command.
#[test]
fn the_rendered_daemon_set_passes_every_path_and_its_flags_parse() {
    use clap::Parser;
    use serde::Deserialize;

    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("cluster");
    let out = common::kubeboot(&["render", "--asset-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = std::fs::read_to_string(dir.join("manifests/pod-checkpointer.yaml")).unwrap();
    let ds = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .find(|o| o["kind"] == "DaemonSet")
        .unwrap();
    let spec = &ds["spec"]["template"]["spec"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let command = strings(&spec["containers"][0]["command"]);
    let mounts: Vec<(String, String)> = spec["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap();
            let volume = spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == name)
                .unwrap();
            let host = volume["hostPath"]["path"]
                .as_str()
                .unwrap_or("")
                .to_string();
            (m["mountPath"].as_str().unwrap().to_string(), host)
        })
        .collect();
    let value = |flag: &str| {
        command
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{flag}=")))
            .unwrap_or_else(|| panic!("{flag} is not in {command:?}"))
            .to_string()
    };
    for flag in [
        "--kubeconfig",
        "--pod-manifest-path",
        "--checkpoint-dir",
        "--lock-file",
        "--cri-socket",
    ] {
        let v = value(flag);
        assert!(
            mounts.iter().any(|(m, _)| v.starts_with(&format!("{m}/"))),
            "{flag}={v} is under no mount of {mounts:?}"
        );
    }
    let ck = value("--checkpoint-dir");
    let (mount, host) = mounts
        .iter()
        .find(|(m, _)| ck.starts_with(&format!("{m}/")))
        .unwrap();
    let on_host = format!("{host}{}", &ck[mount.len()..]);
    assert_eq!(value("--host-checkpoint-dir"), on_host);

    let mut argv = command.clone();
    argv.push("--node-name=m1".into());
    let cli = kubeboot::cmd::Cli::try_parse_from(argv).unwrap();
    let kubeboot::cmd::Command::Checkpoint(args) = cli.command else {
        panic!("not the checkpoint command: {command:?}");
    };
    let r = args.resolve().map_err(|f| f.to_string()).unwrap();
    assert_eq!(r.options.layout.host_checkpoint_dir, on_host);
    assert_eq!(r.options.grace, jiff::SignedDuration::from_mins(5));
}
