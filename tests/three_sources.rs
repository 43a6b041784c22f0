//! Issue 3's bar: for one cluster state, `recover` through the api-server
//! (`--kubeconfig`), through etcd (`--etcd-servers`, TLS) and from a snapshot taken at
//! the same revision write byte-identical asset dirs, except `kubeboot.json`'s `source`.
//!
//! The api-server here is the project's double (`tests/testkit/src/apiserver`), which
//! serves what it decodes from the same real etcd.

mod common;

use common::{kubeboot, stderr, tree};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::cluster;

#[test]
fn apiserver_etcd_and_snapshot_recover_the_same_bytes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let harness = runtime
        .block_on(Harness::start())
        .expect("start etcd + fake-apiserver");
    let objects = cluster::read_objects(&cluster::cluster_data_dir()).unwrap();
    let entries = cluster::storage_entries("/registry", &objects).unwrap();
    runtime.block_on(async {
        let mut client = harness.etcd.client().await.unwrap();
        cluster::put_all(&mut client, &entries).await.unwrap();
    });
    let work = tempfile::tempdir().unwrap();
    let snap = work.path().join("snap.db");
    harness.etcd.snapshot_save(&snap).unwrap();
    let tls = harness.etcd.tls().expect("the harness's etcd uses TLS");
    let endpoint = harness.etcd.endpoint();
    let kubeconfig = harness.kubeconfig.to_str().unwrap().to_string();

    let sources: [(&str, Vec<&str>); 3] = [
        ("apiserver", vec![]),
        (
            "etcd",
            vec![
                "--etcd-servers",
                &endpoint,
                "--etcd-cafile",
                tls.ca_cert.to_str().unwrap(),
                "--etcd-certfile",
                tls.client_cert.to_str().unwrap(),
                "--etcd-keyfile",
                tls.client_key.to_str().unwrap(),
            ],
        ),
        (
            "snapshot",
            vec!["--etcd-backup-file", snap.to_str().unwrap()],
        ),
    ];
    let mut trees = Vec::new();
    for (name, args) in &sources {
        let dir = work.path().join(name);
        // As in bootkube's runbooks, every source is given the admin kubeconfig, which
        // becomes auth/kubeconfig; only the api-server source also reads through it.
        let mut all = vec![
            "recover",
            "--recovery-dir",
            dir.to_str().unwrap(),
            "--kubeconfig",
            &kubeconfig,
        ];
        all.extend_from_slice(args);
        let out = kubeboot(&all);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let mut files = tree(&dir);
        let report = files.remove("kubeboot.json").expect("kubeboot.json");
        let mut report: serde_json::Value = serde_json::from_slice(&report.1).unwrap();
        let source = report.as_object_mut().unwrap().remove("source").unwrap();
        assert_eq!(source["kind"], *name);
        trees.push((name, files, report, source));
    }
    let (_, files0, report0, source0) = &trees[0];
    assert!(files0.keys().any(|k| k.starts_with("bootstrap-manifests/")));
    for (name, files, report, source) in &trees[1..] {
        for (path, (mode, bytes)) in files0 {
            let other = files.get(path);
            let (a, b) = (
                String::from_utf8_lossy(bytes),
                other.map(|o| String::from_utf8_lossy(&o.1)),
            );
            let diff: Vec<String> = match &b {
                None => vec!["(missing)".into()],
                Some(b) => a
                    .lines()
                    .zip(b.lines())
                    .filter(|(x, y)| x != y)
                    .map(|(x, y)| format!("api-server: {x}\n{name}: {y}"))
                    .collect(),
            };
            assert!(
                other.is_some_and(|o| o.0 == *mode && o.1 == *bytes),
                "{name}: {path} differs from the api-server's:\n{}",
                diff.join("\n")
            );
        }
        assert_eq!(files.len(), files0.len(), "{name}: file count");
        assert_eq!(
            report, report0,
            "{name}: kubeboot.json differs outside `source`"
        );
        assert_eq!(source["revision"], source0["revision"], "{name}: revision");
    }
}
