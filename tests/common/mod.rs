//! Shared helpers for the CLI integration tests: run the real `kubeboot` binary and
//! look at what it left on disk.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `kubeboot ARGS` with a bounded wait; panics with its output if it hangs.
pub fn kubeboot(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(args)
        // Never the host's /etc/kubeboot/config.toml: an empty config.
        .env("KUBEBOOT_CONFIG", "/dev/null")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kubeboot");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            keep_log(args, &out);
            return out;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubeboot {args:?} did not finish within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// With `KUBEBOOT_TEST_LOG_DIR` set (by `scripts/test`), appends the run's log (stderr;
/// stdout is the command's output, e.g. `inspect --get` of a Secret) to a file there, one
/// per test binary, for the secrets-in-logs scan (docs/testing.md).
fn keep_log(args: &[&str], out: &Output) {
    use std::io::Write;
    let Some(dir) = std::env::var_os("KUBEBOOT_TEST_LOG_DIR") else {
        return;
    };
    let name = format!("kubeboot-cli-{}.log", std::process::id());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::path::Path::new(&dir).join(name));
    if let Ok(mut f) = file {
        let _ = writeln!(f, "== kubeboot {args:?}");
        let _ = f.write_all(&out.stderr);
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code and that stderr's error is exactly one line mentioning `needle`.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let errors: Vec<_> = err
        .lines()
        .filter(|l| l.starts_with("kubeboot: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "want one error line, got: {err}");
    assert!(
        errors[0].contains(needle),
        "error {:?} lacks {needle:?}",
        errors[0]
    );
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every file under `dir`: relative path → (mode, bytes).
pub fn tree(dir: &Path) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::metadata(&p).expect("metadata");
            if meta.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                let mode = meta.permissions().mode() & 0o7777;
                out.insert(rel, (mode, std::fs::read(&p).expect("read")));
            }
        }
    }
    out
}

pub fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// An age identity file in `dir`, and its public key.
pub fn age_key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("# test key\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    (path, id.to_public().to_string())
}

/// Answers every request with 200 "ok", as the kubelet's healthz port does; returns its URL.
pub fn healthz() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            );
        }
    });
    format!("http://{addr}/healthz")
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of metric `name` in a Prometheus textfile.
pub fn metric(file: &Path, name: &str) -> f64 {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// Real etcd with TLS (so a backup carries the client key) holding the test cluster.
pub fn loaded_tls_etcd() -> kubeboot_testkit::etcd::Etcd {
    let etcd = kubeboot_testkit::etcd::Etcd::start(kubeboot_testkit::etcd::EtcdOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    kubeboot_testkit::cluster::load_into(&etcd).unwrap();
    etcd
}

/// `backup` of the TLS `etcd` into `dir` (its lock file beside it): the arguments every
/// backup test starts with.
pub fn backup_args(etcd: &kubeboot_testkit::etcd::Etcd, dir: &Path) -> Vec<String> {
    let tls = etcd.tls().unwrap();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    vec![
        "backup".into(),
        "--backup-dir".into(),
        path(dir),
        "--lock-file".into(),
        path(&dir.with_extension("lock")),
        "--etcd-servers".into(),
        etcd.endpoint(),
        "--etcd-cafile".into(),
        path(&tls.ca_cert),
        "--etcd-certfile".into(),
        path(&tls.client_cert),
        "--etcd-keyfile".into(),
        path(&tls.client_key),
    ]
}

/// [`loaded_tls_etcd`] and 10 MiB of values: an encrypted backup's archive is then over
/// 8 MiB, an upload in parts (`PART` in remote.rs).
pub fn big_tls_etcd() -> kubeboot_testkit::etcd::Etcd {
    let etcd = loaded_tls_etcd();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = etcd.client().await.unwrap();
        for i in 0..10 {
            c.put(format!("/bulk/{i}"), vec![b'x'; 1 << 20], None)
                .await
                .unwrap();
        }
    });
    etcd
}
