//! `kubeboot recover` end to end against real etcd: a bootkube-style control plane is
//! stored exactly as kube-apiserver stores it, then recovered from the live etcd and
//! from an `etcdctl snapshot save` file, through the real binary.

mod common;

use std::path::Path;

use common::{assert_fails, kubeboot, mode_of, stderr, tree};
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn started(tls: bool) -> Etcd {
    Etcd::start(EtcdOptions {
        tls,
        ..EtcdOptions::default()
    })
    .expect("start etcd")
}

fn load(etcd: &Etcd) -> Vec<(String, Vec<u8>)> {
    cluster::load_into(etcd).expect("load the test cluster into etcd")
}

fn recover(args: &[&str], dir: &Path) -> std::process::Output {
    let mut all = vec!["recover", "--recovery-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    kubeboot(&all)
}

#[test]
fn live_etcd_and_its_snapshot_recover_the_same_asset_dir() {
    let etcd = started(false);
    load(&etcd);
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("backup.db");
    etcd.snapshot_save(&snap).unwrap();

    let live = work.path().join("live");
    let out = recover(&["--etcd-servers", &etcd.endpoint()], &live);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_snap = work.path().join("snap");
    let out = recover(&["--etcd-backup-file", snap.to_str().unwrap()], &from_snap);
    assert!(out.status.success(), "{}", stderr(&out));

    let (mut a, mut b) = (tree(&live), tree(&from_snap));
    let (ja, jb) = (
        a.remove("kubeboot.json").unwrap(),
        b.remove("kubeboot.json").unwrap(),
    );
    assert_eq!(a, b, "asset dirs differ");
    let (mut ja, mut jb): (serde_json::Value, serde_json::Value) = (
        serde_json::from_slice(&ja.1).unwrap(),
        serde_json::from_slice(&jb.1).unwrap(),
    );
    assert_eq!(ja["source"]["kind"], "etcd");
    assert_eq!(jb["source"]["kind"], "snapshot");
    assert_eq!(ja["source"]["revision"], jb["source"]["revision"]);
    ja.as_object_mut().unwrap().remove("source");
    jb.as_object_mut().unwrap().remove("source");
    assert_eq!(ja, jb, "kubeboot.json differs outside `source`");

    // What the renderer was given: the three control-plane components, not the
    // checkpointer nor the user's workload, and their secrets, private.
    let manifests: Vec<_> = a
        .keys()
        .filter(|k| k.starts_with("bootstrap-manifests/"))
        .collect();
    assert_eq!(
        manifests,
        [
            "bootstrap-manifests/bootstrap-kube-apiserver.yaml",
            "bootstrap-manifests/bootstrap-kube-controller-manager.yaml",
            "bootstrap-manifests/bootstrap-kube-scheduler.yaml",
        ]
    );
    let key = &a["tls/secrets/kube-apiserver/apiserver.key"];
    assert_eq!(key.0, 0o400, "the volume's defaultMode 0400 is honoured");
    assert!(String::from_utf8_lossy(&key.1).contains("TEST-APISERVER-KEY"));
    assert_eq!(mode_of(&live.join("tls/secrets/kube-apiserver")), 0o700);
    assert!(
        !a.keys().any(|k| k.contains("shop")),
        "user objects leaked into the assets"
    );
    assert_eq!(
        a["tls/config-maps/kube-scheduler-config/policy.bin"].1,
        b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xff"
    );
}

#[test]
fn tls_etcd_with_bootkube_flag_spellings() {
    let etcd = started(true);
    load(&etcd);
    let tls = etcd.tls().expect("tls");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let out = recover(
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--etcd-ca-path",
            tls.ca_cert.to_str().unwrap(),
            "--etcd-certificate-path",
            tls.client_cert.to_str().unwrap(),
            "--etcd-private-key-path",
            tls.client_key.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        dir.join("bootstrap-manifests/bootstrap-kube-apiserver.yaml")
            .exists()
    );

    // Without a client certificate the server refuses us: a one-line error naming the
    // endpoint, exit 3, and nothing written.
    let dir = work.path().join("no-cert");
    let out = recover(
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--etcd-cafile",
            tls.ca_cert.to_str().unwrap(),
            "--etcd-dial-timeout",
            "3s",
            "--etcd-request-timeout",
            "5s",
        ],
        &dir,
    );
    assert_fails(&out, 3, &etcd.endpoint());
    assert!(!dir.exists());
}

#[test]
fn unreachable_etcd_is_exit_3_and_writes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = recover(
        &[
            "--etcd-servers",
            &endpoint,
            "--etcd-dial-timeout",
            "1s",
            "--etcd-request-timeout",
            "2s",
        ],
        &dir,
    );
    assert_fails(&out, 3, &endpoint);
    // The root cause once, readably; no Rust debug form of the gRPC error (issue 15,
    // finding 9: it printed `tonic::transport::Error(Transport, ConnectError(… Os {`).
    let err = stderr(&out);
    assert!(err.contains("Connection refused (os error 111)"), "{err}");
    for debug in ["tonic::", "Os {", "ConnectError("] {
        assert!(!err.contains(debug), "{debug} in {err}");
    }
    assert!(!dir.exists());
}

#[test]
fn a_missing_referenced_secret_names_it_and_writes_nothing() {
    let etcd = started(false);
    load(&etcd);
    etcd.etcdctl(&[
        "del",
        "/registry/secrets/kube-system/kube-controller-manager",
    ])
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let out = recover(&["--etcd-servers", &etcd.endpoint()], &dir);
    assert_fails(&out, 1, "kube-controller-manager");
    assert!(!dir.exists());
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
}

#[test]
fn a_non_empty_recovery_dir_is_refused_unless_forced() {
    let etcd = started(false);
    load(&etcd);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious"), b"operator notes").unwrap();
    let out = recover(&["--etcd-servers", &etcd.endpoint()], &dir);
    assert_fails(&out, 2, "--force");
    assert_eq!(
        std::fs::read(dir.join("precious")).unwrap(),
        b"operator notes"
    );

    let out = recover(&["--etcd-servers", &etcd.endpoint(), "--force"], &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("kubeboot.json").exists());
    // The old contents were moved aside, never deleted, and the output says where
    // (issue 15, finding 7).
    let aside: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("precious").exists())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let said = format!(
        "moved the previous {} aside to {}",
        dir.display(),
        aside[0].display()
    );
    assert!(
        common::stdout(&out).contains(&said),
        "{}",
        common::stdout(&out)
    );

    // A regular file named as the asset dir is a usage error found before the source is
    // read, and the file is left as it was (issue 15, finding 6: was 1, after the read).
    let file = work.path().join("a-file");
    std::fs::write(&file, b"not a dir").unwrap();
    let out = recover(&["--etcd-servers", "http://127.0.0.1:1", "--force"], &file);
    assert_fails(&out, 2, "exists and is not a directory");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a dir");
}

/// Issue 15, finding 8: a source without a control plane names itself and says what it
/// held, instead of "none of the 0 DaemonSets", and is exit 3 (no recovery source).
#[test]
fn a_source_without_a_control_plane_names_itself() {
    let work = tempfile::tempdir().unwrap();
    let db = common::fixtures().join("auger/boltdb/db");
    let out = recover(
        &[
            "--etcd-backup-file",
            db.to_str().unwrap(),
            "--skip-hash-check",
        ],
        &work.path().join("out"),
    );
    assert_fails(
        &out,
        3,
        &format!(
            "nothing to recover in {}: it holds no DaemonSet",
            db.display()
        ),
    );
    assert!(!work.path().join("out").exists());
}

#[test]
fn usage_errors_are_exit_2() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    assert_fails(&recover(&[], &dir), 2, "--etcd-servers");
    assert_fails(
        &recover(
            &[
                "--etcd-servers",
                "http://127.0.0.1:1",
                "--etcd-certfile",
                "/x",
            ],
            &dir,
        ),
        2,
        "--etcd-keyfile",
    );
    assert_fails(
        &recover(
            &["--etcd-backup-file", "/x", "--etcd-prefix", "registry"],
            &dir,
        ),
        2,
        "--etcd-prefix",
    );
    assert!(!dir.exists());
}

#[test]
fn the_kubeconfig_is_copied_private() {
    let etcd = started(false);
    load(&etcd);
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(&kubeconfig, b"apiVersion: v1\nkind: Config\n").unwrap();
    let dir = work.path().join("out");
    let out = recover(
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.join("auth/kubeconfig")).unwrap(),
        b"apiVersion: v1\nkind: Config\n"
    );
    assert_eq!(mode_of(&dir.join("auth/kubeconfig")), 0o600);
    assert_eq!(mode_of(&dir.join("auth")), 0o700);
}

#[test]
fn a_wrong_ca_says_so_instead_of_timing_out() {
    // bootkube #997: TLS failures surfaced as "context deadline exceeded".
    let etcd = started(true);
    let tls = etcd.tls().expect("tls");
    let work = tempfile::tempdir().unwrap();
    // A CA that did not sign etcd's certificate: the client cert's own file.
    let dir = work.path().join("out");
    let out = recover(
        &[
            "--etcd-servers",
            &etcd.endpoint(),
            "--etcd-cafile",
            tls.client_cert.to_str().unwrap(),
            "--etcd-certfile",
            tls.client_cert.to_str().unwrap(),
            "--etcd-keyfile",
            tls.client_key.to_str().unwrap(),
            "--etcd-dial-timeout",
            "3s",
        ],
        &dir,
    );
    assert_fails(&out, 3, &etcd.endpoint());
    let err = stderr(&out).to_lowercase();
    assert!(err.contains("certificate") || err.contains("tls"), "{err}");
    assert!(!dir.exists());
}

#[test]
fn a_damaged_backup_is_exit_3_and_writes_nothing() {
    let etcd = started(false);
    load(&etcd);
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("backup.db");
    etcd.snapshot_save(&snap).unwrap();
    let bytes = std::fs::read(&snap).unwrap();

    let cut = work.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 3;
    flipped[mid] ^= 0x40;
    let flip = work.path().join("flip.db");
    std::fs::write(&flip, &flipped).unwrap();

    for (file, needle) in [(&cut, "cut.db"), (&flip, "flip.db")] {
        let dir = work.path().join("out");
        let out = recover(&["--etcd-backup-file", file.to_str().unwrap()], &dir);
        assert_fails(&out, 3, needle);
        assert!(!dir.exists());
    }
}

#[test]
fn apiserver_source_bad_kubeconfig_and_unreachable_server() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let bad = work.path().join("bad-kubeconfig");
    std::fs::write(&bad, b"this: [is not a kubeconfig").unwrap();
    assert_fails(
        &recover(&["--kubeconfig", bad.to_str().unwrap()], &dir),
        2,
        "bad-kubeconfig",
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("https://127.0.0.1:{port}");
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
             insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: test-only\n\
             contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let out = recover(
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--apiserver-timeout",
            "3s",
        ],
        &dir,
    );
    assert_fails(&out, 3, &format!("127.0.0.1:{port}"));
    assert!(
        !stderr(&out).contains("test-only"),
        "a token leaked into the error"
    );
    assert!(!dir.exists());
}

#[test]
fn encryption_at_rest_is_decrypted_with_the_apiservers_config() {
    let config_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/encryption/encryption-config.yaml");
    let config = kubeboot::encryption::EncryptionConfig::from_file(&config_path).unwrap();
    let objects = cluster::read_objects(&cluster::cluster_data_dir()).unwrap();
    let plain = cluster::storage_entries("/registry", &objects).unwrap();
    let encrypted = cluster::encrypt_entries("/registry", &plain, &config).unwrap();
    let secret_key = "/registry/secrets/kube-system/kube-apiserver";
    let stored = &encrypted.iter().find(|(k, _)| k == secret_key).unwrap().1;
    assert!(
        stored.starts_with(b"k8s:enc:aescbc:v1:key1:"),
        "secrets use the first provider"
    );
    let ds = "/registry/daemonsets/kube-system/kube-apiserver";
    let stored = &encrypted.iter().find(|(k, _)| k == ds).unwrap().1;
    assert!(
        stored.starts_with(b"k8s:enc:aesgcm:v1:gcm1:"),
        "*.apps uses aesgcm"
    );

    let (etcd_plain, etcd_enc) = (started(false), started(false));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        cluster::put_all(&mut etcd_plain.client().await.unwrap(), &plain)
            .await
            .unwrap();
        cluster::put_all(&mut etcd_enc.client().await.unwrap(), &encrypted)
            .await
            .unwrap();
    });
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("encrypted.db");
    etcd_enc.snapshot_save(&snap).unwrap();

    // Without the config: exit 1, naming the key and the provider; nothing written.
    let dir = work.path().join("no-config");
    let out = recover(&["--etcd-backup-file", snap.to_str().unwrap()], &dir);
    assert_fails(&out, 1, "aes");
    assert!(stderr(&out).contains("/registry/"), "{}", stderr(&out));
    assert!(!dir.exists());

    // With it, from the snapshot and from the live etcd: the same assets as from the
    // unencrypted cluster.
    let config_arg = config_path.to_str().unwrap();
    let want = work.path().join("plain");
    assert!(
        recover(&["--etcd-servers", &etcd_plain.endpoint()], &want)
            .status
            .success()
    );
    for (name, source) in [
        (
            "from-snap",
            vec!["--etcd-backup-file", snap.to_str().unwrap()],
        ),
        ("from-etcd", vec!["--etcd-servers", &etcd_enc.endpoint()]),
    ] {
        let dir = work.path().join(name);
        let mut args = source.clone();
        args.extend(["--encryption-provider-config", config_arg]);
        let out = recover(&args, &dir);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let (mut got, mut exp) = (tree(&dir), tree(&want));
        got.remove("kubeboot.json");
        exp.remove("kubeboot.json");
        assert_eq!(got, exp, "{name}");
    }

    // A bad config file is a config error.
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/encryption/short-key.yaml");
    let dir = work.path().join("bad-config");
    let out = recover(
        &[
            "--etcd-backup-file",
            snap.to_str().unwrap(),
            "--encryption-provider-config",
            bad.to_str().unwrap(),
        ],
        &dir,
    );
    assert_fails(&out, 2, "short-key.yaml");
}

/// Stores raw bytes under `key`, as an api-server would.
fn put_raw(etcd: &Etcd, key: &str, value: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = etcd.client().await.unwrap();
        client.put(key, value, None).await.unwrap();
    });
}

/// The api-server DaemonSet as a newer cluster would store it: its pod spec carries protobuf
/// field 999, which no descriptor set knows. Hand-made: the object is re-encoded, field 999 is
/// appended to the PodSpec inside the template, and the `k8s\0` envelope is rebuilt around it.
fn with_unknown_pod_spec_field(stored: &[u8]) -> Vec<u8> {
    let decoded = kubeboot::codec::decode("ds", stored).unwrap();
    assert!(decoded.unknown_fields.is_empty());
    let mut object = decoded.object;
    // The object without its pod spec, and the pod spec alone (as a Pod's field 2).
    let spec = object["spec"]["template"]["spec"].take();
    object["spec"]["template"]["spec"] = serde_json::json!({});
    let empty_spec_raw = kubeboot::codec::encode_bare(&object).unwrap();
    let pod_spec = kubeboot::codec::encode_bare(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "spec": spec
    }))
    .unwrap();
    // Pod field 2 is its spec: take those bytes and add field 999 (wire type 2, "x").
    let mut spec_bytes = field_bytes(&pod_spec, 2);
    spec_bytes.extend_from_slice(&[0xba, 0x3e, 0x01, b'x']);
    // DaemonSet field 2 (spec) → field 2 (template) → field 2 (PodSpec): rebuild bottom up.
    let ds_spec = field_bytes(&empty_spec_raw, 2);
    let template = field_bytes(&ds_spec, 2);
    let template = replace_field(&template, 2, &spec_bytes);
    let ds_spec = replace_field(&ds_spec, 2, &template);
    let raw = replace_field(&empty_spec_raw, 2, &ds_spec);
    let mut type_meta = Vec::new();
    put_field(&mut type_meta, 1, b"apps/v1");
    put_field(&mut type_meta, 2, b"DaemonSet");
    let mut value = b"k8s\0".to_vec();
    put_field(&mut value, 1, &type_meta);
    put_field(&mut value, 2, &raw);
    put_field(&mut value, 3, b"");
    put_field(&mut value, 4, b"");
    value
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(number << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// The top-level fields of a message: (number, wire type, bytes). Only varints and
/// length-delimited fields occur in the messages edited here.
fn fields(mut msg: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
    fn read_varint(b: &mut &[u8]) -> u64 {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            n |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        n
    }
    let mut out = Vec::new();
    while !msg.is_empty() {
        let tag = read_varint(&mut msg);
        let (number, wire) = (tag >> 3, (tag & 7) as u8);
        let bytes = match wire {
            0 => {
                let mut v = Vec::new();
                varint(read_varint(&mut msg), &mut v);
                v
            }
            2 => {
                let len = read_varint(&mut msg) as usize;
                let (head, rest) = msg.split_at(len);
                msg = rest;
                head.to_vec()
            }
            other => panic!("unexpected wire type {other}"),
        };
        out.push((number, wire, bytes));
    }
    out
}

fn field_bytes(msg: &[u8], number: u64) -> Vec<u8> {
    fields(msg)
        .into_iter()
        .find(|(n, wire, _)| *n == number && *wire == 2)
        .map(|(_, _, b)| b)
        .unwrap_or_default()
}

fn replace_field(msg: &[u8], number: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seen = false;
    for (n, wire, b) in fields(msg) {
        let b = if n == number && wire == 2 {
            seen = true;
            bytes.to_vec()
        } else {
            b
        };
        varint(n << 3 | u64::from(wire), &mut out);
        if wire == 2 {
            varint(b.len() as u64, &mut out);
        }
        out.extend_from_slice(&b);
    }
    if !seen {
        put_field(&mut out, number, bytes);
    }
    out
}

#[test]
fn a_field_the_descriptors_do_not_know_is_a_warning_and_strict_refuses() {
    let etcd = started(false);
    let entries = load(&etcd);
    let (key, stored) = entries
        .iter()
        .find(|(k, _)| k.ends_with("/daemonsets/kube-system/kube-apiserver"))
        .expect("the api-server DaemonSet");
    let value = with_unknown_pod_spec_field(stored);
    let decoded = kubeboot::codec::decode(key, &value).unwrap();
    assert_eq!(
        decoded.unknown_fields,
        ["k8s.io.api.core.v1.PodSpec field 999"]
    );
    put_raw(&etcd, key, &value);
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("backup.db");
    etcd.snapshot_save(&snap).unwrap();

    let dir = work.path().join("warned");
    let out = recover(&["--etcd-backup-file", snap.to_str().unwrap()], &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let field = format!("{key}: protobuf k8s.io.api.core.v1.PodSpec field 999 is unknown");
    assert!(stderr(&out).contains(&field), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("kubeboot.json")).unwrap()).unwrap();
    let warnings = report["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains(&field)),
        "{warnings:?}"
    );

    let strict = work.path().join("strict");
    let out = recover(
        &["--etcd-backup-file", snap.to_str().unwrap(), "--strict"],
        &strict,
    );
    assert_fails(&out, 4, "--strict: ");
    assert!(stderr(&out).contains("k8s.io.api.core.v1.PodSpec field 999"));
    assert!(!strict.exists(), "nothing written under --strict");
}
