//! Backups copied off the node to a real S3 server on loopback: `s3s-fs` (an S3
//! protocol server over a directory, from the s3s project; `scripts/setup-tools`
//! installs it, pinned, and exports `KUBEBOOT_S3S_FS`), against real etcd (TLS, so the
//! backup carries the etcd client key).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, kubeboot, stderr};
use kubeboot::backup::catalog;
use kubeboot::backup::remote::Remote;
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

const ACCESS: &str = "kubeboot-test-access";
const SECRET: &str = "kubeboot-test-secret-0123456789";
const BUCKET: &str = "backups";

/// A running s3s-fs over its own root dir; killed on drop.
struct S3 {
    child: Child,
    endpoint: String,
    root: std::sync::Arc<tempfile::TempDir>,
    bin: String,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server, or `None` (said on stderr) when it is not installed outside CI.
fn s3() -> Option<S3> {
    let bin = match std::env::var("KUBEBOOT_S3S_FS")
        .ok()
        .filter(|b| !b.is_empty())
    {
        Some(b) => b,
        None if std::env::var_os("CI").is_some() => {
            panic!("KUBEBOOT_S3S_FS is not set under CI; run scripts/setup-tools")
        }
        None => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: s3s-fs not found (run scripts/setup-tools)"
            );
            return None;
        }
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    Some(serve(bin, std::sync::Arc::new(root)))
}

/// s3s-fs on a free port over `root`.
fn serve(bin: String, root: std::sync::Arc<tempfile::TempDir>) -> S3 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            ACCESS,
            "--secret-key",
            SECRET,
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start s3s-fs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    S3 {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        root,
        bin,
    }
}

impl S3 {
    /// The same store served again, by a new process on a new port.
    fn restart(&self) -> S3 {
        serve(self.bin.clone(), self.root.clone())
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn options(endpoint: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", ACCESS),
        ("aws_secret_access_key", secret),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `kubeboot backup` of `etcd` into `dir`, with `extra`.
fn backup(etcd: &Etcd, dir: &Path, extra: &[String]) -> std::process::Output {
    let mut args = common::backup_args(etcd, dir);
    args.extend_from_slice(extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    kubeboot(&refs)
}

fn remote_args(url: &str, opts: &[(String, String)]) -> Vec<String> {
    let mut a = vec!["--remote".to_string(), url.to_string()];
    for (k, v) in opts {
        a.push("--remote-option".into());
        a.push(format!("{k}={v}"));
    }
    a
}

#[test]
fn an_encrypted_backup_goes_off_the_node_and_comes_back_byte_identical() {
    let Some(server) = s3() else { return };
    let etcd = common::loaded_tls_etcd();
    let work = tempfile::tempdir().unwrap();
    let (_, recipient) = common::age_key_pair(work.path(), "ops.key");
    let dir = work.path().join("backups");
    let metrics = work.path().join("backup.prom");
    let url = format!("s3://{BUCKET}/cluster-a");
    let opts = options(&server.endpoint, SECRET);
    let mut extra = remote_args(&url, &opts);
    extra.extend([
        "--recipient".into(),
        recipient,
        "--metrics-file".into(),
        s(&metrics).into(),
    ]);
    let out = backup(&etcd, &dir, &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("backup copied off the node"), "{err}");
    assert!(!err.contains(SECRET), "the secret key is logged: {err}");
    assert!(
        common::metric(
            &metrics,
            "kubeboot_backup_last_upload_success_timestamp_seconds"
        ) > 0.0
    );
    assert_eq!(
        common::metric(&metrics, "kubeboot_backup_upload_failures_total"),
        0.0
    );

    let local = catalog::scan(&dir).unwrap();
    assert_eq!(local.len(), 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let remote = Remote::open(&url, &opts).unwrap();
    let listed = rt.block_on(remote.list()).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].whole && listed[0].name == local[0].name,
        "{listed:?}"
    );
    let back = work.path().join("downloaded");
    rt.block_on(remote.download(&listed[0].name, &back))
        .unwrap();
    for file in ["backup.json", "backup.tar.age"] {
        assert_eq!(
            std::fs::read(back.join(file)).unwrap(),
            std::fs::read(local[0].dir.join(file)).unwrap(),
            "{file} differs"
        );
    }
    // A second run: the first copy is still there (retention keeps both), a second added.
    let out = backup(&etcd, &dir, &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        rt.block_on(remote.list())
            .unwrap()
            .iter()
            .filter(|b| b.whole)
            .count()
            >= 1
    );
}

#[test]
fn a_plain_backup_is_not_uploaded_without_consent() {
    let etcd = Etcd::start(EtcdOptions {
        tls: true,
        ..EtcdOptions::default()
    })
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let out = backup(&etcd, &dir, &remote_args("s3://b/p", &[]));
    assert_fails(
        &out,
        2,
        "--remote s3://b/p: a plain backup holds private keys",
    );
    assert!(!dir.exists(), "nothing written");
}

#[test]
fn a_wrong_key_or_bucket_keeps_the_local_copy_and_counts_the_failure() {
    let Some(server) = s3() else { return };
    let etcd = common::loaded_tls_etcd();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups");
    let metrics = work.path().join("backup.prom");
    let wrong_secret = "not-the-secret-9876543210";
    for (i, (url, secret)) in [
        (format!("s3://{BUCKET}/p"), wrong_secret),
        ("s3://no-such-bucket/p".to_string(), SECRET),
    ]
    .into_iter()
    .enumerate()
    {
        let mut extra = remote_args(&url, &options(&server.endpoint, secret));
        extra.extend([
            "--allow-plaintext-upload".into(),
            "--metrics-file".into(),
            s(&metrics).into(),
        ]);
        let out = backup(&etcd, &dir, &extra);
        assert!(
            out.status.success(),
            "the backup itself is kept: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains(&format!("was not copied to {url}")), "{err}");
        assert!(
            !err.contains(wrong_secret) && !err.contains(SECRET),
            "a secret is logged: {err}"
        );
        assert_eq!(
            common::metric(&metrics, "kubeboot_backup_upload_failures_total"),
            (i + 1) as f64
        );
        assert!(
            !catalog::scan(&dir).unwrap().is_empty(),
            "the local copy is kept"
        );
    }
    let _ = PathBuf::new();
}

/// `kubeboot ARGS` plus `--remote-option` for each of `opts`.
fn kubeboot_remote(args: &[&str], opts: &[(String, String)]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for (k, v) in opts {
        all.push("--remote-option".into());
        all.push(format!("{k}={v}"));
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    kubeboot(&refs)
}

/// Issue 14: the master that kept the backups is gone; the copy in object storage is
/// named by URL (a backup's name, or `latest`: the highest revision) and read by
/// `inspect`, `backup verify` and `recover`, each file checked against its backup.json
/// on the way down. A damaged object is refused by name and nothing is written.
#[test]
fn recover_inspect_and_verify_take_a_backup_by_url() {
    let Some(server) = s3() else { return };
    let etcd = common::loaded_tls_etcd();
    let work = tempfile::tempdir().unwrap();
    let (key, recipient) = common::age_key_pair(work.path(), "ops.key");
    let dir = work.path().join("backups");
    let url = format!("s3://{BUCKET}/cluster-b");
    let opts = options(&server.endpoint, SECRET);
    let mut extra = remote_args(&url, &opts);
    extra.extend(["--recipient".into(), recipient]);
    for _ in 0..2 {
        let out = backup(&etcd, &dir, &extra);
        assert!(out.status.success(), "{}", stderr(&out));
        // The second backup holds a later revision.
        cluster::load_into(&etcd).unwrap();
    }
    let local = catalog::scan(&dir).unwrap();
    assert_eq!(local.len(), 2);
    let (newest, oldest) = (&local[0], &local[1]);
    let newest_rev = newest.manifest.as_ref().unwrap().revision;
    assert!(newest_rev > oldest.manifest.as_ref().unwrap().revision);
    // What the local copy recovers, to compare with the store's.
    // `recover` of FILE|URL into DIR, opened with the key.
    let recover = |dir: &Path, from: &str| {
        let args = [
            "recover",
            "--recovery-dir",
            s(dir),
            "--etcd-backup-file",
            from,
            "--identity",
            s(&key),
        ];
        kubeboot_remote(&args, &opts)
    };
    let from_local = work.path().join("from-local");
    let out = recover(&from_local, s(&newest.dir.join("backup.tar.age")));
    assert!(out.status.success(), "{}", stderr(&out));
    // `backup list` with the store: each backup here and there.
    let listing = |dir: &Path| -> serde_json::Value {
        let mut args = vec!["backup".to_string(), "--backup-dir".into(), s(dir).into()];
        args.extend(remote_args(&url, &opts));
        args.extend(["list".into(), "-o".into(), "json".into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = kubeboot(&refs);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = listing(&dir);
    assert_eq!(v["remote"], url.as_str());
    for b in v["backups"].as_array().unwrap() {
        let kinds: Vec<&str> = b["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["local", "remote"], "{b}");
        assert_eq!(b["locations"][1]["state"], "uploaded", "{b}");
    }
    // The master is gone: only the store is left.
    std::fs::remove_dir_all(&dir).unwrap();
    let v = listing(&dir);
    let ids: Vec<&str> = v["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [newest.name.as_str(), oldest.name.as_str()], "{v}");
    assert_eq!(v["backups"][0]["state"], "uploaded");
    assert_eq!(v["backups"][0]["revision"], newest_rev);
    assert_eq!(v["backups"][0]["encrypted"], true);

    let latest = format!("{url}/latest");
    let out = kubeboot_remote(
        &["inspect", &latest, "--identity", s(&key), "-o", "json"],
        &opts,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["revision"], newest_rev, "{summary}");
    assert_eq!(summary["file"], latest.as_str());

    let named = format!("{url}/{}", oldest.name);
    let out = kubeboot_remote(&["backup", "verify", &named, "--identity", s(&key)], &opts);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with(&format!("{named}: whole, restorable")),
        "{said}"
    );

    let rec = work.path().join("recovery/assets");
    std::fs::create_dir_all(rec.parent().unwrap()).unwrap();
    let out = recover(&rec, &latest);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rec.join("kubeboot.json")).unwrap()).unwrap();
    assert_eq!(record["source"]["location"], latest.as_str(), "{record}");
    assert_eq!(record["source"]["revision"], newest_rev);
    // Byte for byte what the local copy recovers, but for the record of where it came
    // from and when.
    let (mut a, mut b) = (common::tree(&rec), common::tree(&from_local));
    a.remove("kubeboot.json");
    b.remove("kubeboot.json");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "the asset dirs differ");
    let left: Vec<String> = std::fs::read_dir(rec.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["assets"], "the private copies are removed");
    assert!(!stderr(&out).contains(SECRET), "the secret key is logged");

    // One flipped byte in the newest archive, in the store's own files.
    let archive = server
        .root
        .path()
        .join(BUCKET)
        .join("cluster-b")
        .join(&newest.name)
        .join("backup.tar.age");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&archive, bytes).unwrap();
    let out = kubeboot_remote(&["backup", "verify", &latest, "--identity", s(&key)], &opts);
    assert_fails(&out, 1, &format!("{url}/{}/backup.tar.age: ", newest.name));
    let rec2 = work.path().join("recovery/again");
    let out = recover(&rec2, &latest);
    assert_fails(&out, 3, "but backup.json says");
    assert!(!rec2.exists(), "nothing written");
}

/// The same through a `file://` store (a mounted share), with the URL mistakes an
/// operator makes: no backup named, a prefix with no whole backup, an unknown option.
#[test]
fn a_file_store_by_url_and_urls_that_name_no_backup() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("share");
    std::fs::create_dir_all(&store).unwrap();
    let url = format!("file://{}", store.display());
    let dir = work.path().join("backups");
    let out = kubeboot(&[
        "backup",
        "--backup-dir",
        s(&dir),
        "--lock-file",
        s(&work.path().join("lock")),
        "--etcd-servers",
        &etcd.endpoint(),
        "--remote",
        &url,
        "--allow-plaintext-upload",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubeboot(&["inspect", &format!("{url}/latest")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revision"));

    assert_fails(
        &kubeboot(&["inspect", &url]),
        2,
        "name a backup after the store's URL",
    );
    let empty = work.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_fails(
        &kubeboot(&["inspect", &format!("file://{}/latest", empty.display())]),
        3,
        "no whole backup in",
    );
    assert_fails(
        &kubeboot(&[
            "inspect",
            "s3://b/p/latest",
            "--remote-option",
            "no_such_option=1",
        ]),
        2,
        "--remote-option no_such_option",
    );
}

/// A TCP proxy on loopback to `upstream` that, once `cut_after` bytes went from clients
/// to the server, SIGKILLs the server process (`pid`) and drops every connection: the
/// server dies in the middle of an upload, at a byte count, not at a moment.
fn cutting_proxy(upstream: u16, cut_after: usize, pid: u32) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(Shutdown::Both);
            });
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64 * 1024];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 || server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if sent.fetch_add(n, Ordering::SeqCst) + n > cut_after {
                        kubeboot_testkit::kubelet::process::signal_pid(pid, 9);
                        break;
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

/// Issue 14: the store dies in the middle of a multipart upload. The backup is kept
/// here and the run succeeds with a warning, the failure is counted; nothing shows in
/// the store under the backup's name; the next run, with the store back, sends it whole
/// beside its own.
#[test]
fn a_store_killed_mid_upload_shows_nothing_and_the_next_run_resumes() {
    let Some(server) = s3() else { return };
    // 10 MiB of values: the archive goes in a multipart upload (parts of 8 MiB).
    let etcd = common::big_tls_etcd();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_, recipient) = common::age_key_pair(work.path(), "ops.key");
    let dir = work.path().join("backups");
    let metrics = work.path().join("backup.prom");
    let url = format!("s3://{BUCKET}/cut");
    let port: u16 = server.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = cutting_proxy(port, 3 << 20, server.child.id());
    let via_proxy = options(&format!("http://127.0.0.1:{proxy}"), SECRET);
    let mut extra = remote_args(&url, &via_proxy);
    extra.extend([
        "--recipient".into(),
        recipient.clone(),
        "--metrics-file".into(),
        s(&metrics).into(),
    ]);
    let out = backup(&etcd, &dir, &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was not copied to"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        common::metric(&metrics, "kubeboot_backup_upload_failures_total"),
        1.0
    );
    let first = catalog::scan(&dir).unwrap();
    assert_eq!(first.len(), 1, "the local copy is kept");

    // The store comes back: nothing under the backup's name, no backup.json.
    let again = server.restart();
    let opts = options(&again.endpoint, SECRET);
    let remote = Remote::open(&url, &opts).unwrap();
    let listed = rt.block_on(remote.list()).unwrap();
    assert!(listed.iter().all(|b| !b.whole), "{listed:?}");
    let store_files: Vec<String> = walk(&again.root.path().join(BUCKET).join("cut"));
    assert!(
        !store_files
            .iter()
            .any(|f| f.ends_with("backup.tar.age") || f.ends_with("backup.json")),
        "an object under its final name: {store_files:?}"
    );

    // The next run sends its own backup and the one whose copy never finished.
    let mut extra = remote_args(&url, &opts);
    extra.extend(["--recipient".into(), recipient]);
    cluster::load_into(&etcd).unwrap();
    let out = backup(&etcd, &dir, &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("an earlier backup whose copy never finished was copied off the node"),
        "{}",
        stderr(&out)
    );
    let listed = rt.block_on(remote.list()).unwrap();
    let whole: Vec<&str> = listed
        .iter()
        .filter(|b| b.whole)
        .map(|b| b.name.as_str())
        .collect();
    assert_eq!(whole.len(), 2, "{listed:?}");
    assert!(whole.contains(&first[0].name.as_str()), "{listed:?}");
    let back = work.path().join("resumed");
    rt.block_on(remote.download(&first[0].name, &back)).unwrap();
    assert_eq!(
        std::fs::read(back.join("backup.tar.age")).unwrap(),
        std::fs::read(first[0].dir.join("backup.tar.age")).unwrap()
    );
}

/// Every file under `dir`, as paths relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
