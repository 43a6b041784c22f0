//! `kubeboot render` through the real binary: the asset dir it writes, the exit codes
//! and one-line errors of docs/design.md §2, and `--force`'s move-aside semantics.

mod common;

use std::path::Path;

use common::{assert_fails, kubeboot, mode_of, stderr, stdout, tree};

fn render(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["render", "--asset-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    kubeboot(&args)
}

#[test]
fn renders_a_bootable_asset_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let out = render(
        &dir,
        &[
            "--api-servers",
            "https://10.0.0.5:6443,https://k8s.example.com",
            "--etcd-servers",
            "https://10.0.0.11:2379",
            "--images",
            "kube-scheduler=reg.example/sched:v1,kube-proxy=reg.example/proxy:v1",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        stdout(&out).contains("next: kubeboot start --asset-dir"),
        "{}",
        stdout(&out)
    );
    let files = tree(&dir);
    for want in [
        "auth/kubeconfig",
        "bootstrap-manifests/bootstrap-kube-apiserver.yaml",
        "bootstrap-manifests/bootstrap-kube-controller-manager.yaml",
        "bootstrap-manifests/bootstrap-kube-scheduler.yaml",
        "manifests/00-namespace-kube-system.yaml",
        "manifests/pod-checkpointer.yaml",
        "manifests/kube-proxy.yaml",
        "tls/ca.crt",
        "tls/ca.key",
        "tls/etcd/ca.crt",
        "tls/secrets/kube-apiserver/apiserver.key",
        "tls/config-maps/kubeconfig-in-cluster/kubeconfig",
        "kubeboot.json",
    ] {
        assert!(
            files.contains_key(want),
            "{want} missing: {:?}",
            files.keys()
        );
    }
    assert_eq!(files["auth/kubeconfig"].0, 0o600);
    assert_eq!(files["tls/ca.key"].0, 0o600);
    assert_eq!(mode_of(&dir), 0o700);
    let kubeconfig = String::from_utf8_lossy(&files["auth/kubeconfig"].1);
    assert!(
        kubeconfig.contains("server: https://10.0.0.5:6443"),
        "{kubeconfig}"
    );
    let sched = String::from_utf8_lossy(&files["manifests/kube-scheduler.yaml"].1);
    assert!(sched.contains("image: reg.example/sched:v1"), "{sched}");
    let apiserver =
        String::from_utf8_lossy(&files["bootstrap-manifests/bootstrap-kube-apiserver.yaml"].1);
    assert!(apiserver.contains("--secure-port=6443"), "{apiserver}");
    let report: serde_json::Value = serde_json::from_slice(&files["kubeboot.json"].1).unwrap();
    assert_eq!(report["source"]["kind"], "rendered");
}

/// Each named master's kubelet gets a credential of its own, as the Node authorizer and
/// NodeRestriction know kubelets: never the admin's (cluster-admin on every master).
#[test]
fn node_names_get_their_own_kubelet_kubeconfigs() {
    use base64::Engine;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let out = render(&dir, &["--node-names", "master-1,master-2.example"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = tree(&dir);
    let ca_pem = &files["tls/ca.crt"].1;
    let (_, ca) = x509_parser::pem::parse_x509_pem(ca_pem).unwrap();
    let ca = ca.parse_x509().unwrap();
    for node in ["master-1", "master-2.example"] {
        let path = format!("auth/kubelets/{node}.kubeconfig");
        let (mode, bytes) = &files[&path];
        assert_eq!(*mode, 0o600, "{path}");
        let kc: serde_yaml_ng::Value = serde_yaml_ng::from_slice(bytes).unwrap();
        let user = &kc["users"][0];
        assert_eq!(
            user["name"].as_str(),
            Some(format!("system:node:{node}").as_str())
        );
        let der = base64::engine::general_purpose::STANDARD
            .decode(user["user"]["client-certificate-data"].as_str().unwrap())
            .unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&der).unwrap();
        let cert = pem.parse_x509().unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        let org: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(cn, [format!("system:node:{node}").as_str()]);
        assert_eq!(org, ["system:nodes"]);
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(
            kc["clusters"][0]["cluster"]["server"].as_str(),
            Some("https://127.0.0.1:6443")
        );
    }
    assert_eq!(mode_of(&dir.join("auth/kubelets")), 0o700);
    let report: serde_json::Value = serde_json::from_slice(&files["kubeboot.json"].1).unwrap();
    assert_eq!(
        report["new_cluster"]["node_names"],
        serde_json::json!(["master-1", "master-2.example"])
    );
}

#[test]
fn non_empty_dir_is_refused_unless_forced_then_moved_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious"), b"keep me").unwrap();
    let out = render(&dir, &[]);
    assert_fails(&out, 2, "refusing to write into non-empty --asset-dir");
    assert_eq!(std::fs::read(dir.join("precious")).unwrap(), b"keep me");

    let out = render(&dir, &["--force"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(dir.join("kubeboot.json").exists());
    let aside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &dir)
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(aside[0].join("precious")).unwrap(),
        b"keep me"
    );
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    for (args, needle) in [
        (
            vec![
                "--self-hosted-etcd",
                "--api-servers",
                "https://10.0.0.1:6443,https://10.0.0.2:6443",
            ],
            "a multi-member self-hosted etcd is not supported",
        ),
        (
            vec!["--images", "kube-dns=x:1"],
            "--images \"kube-dns=x:1\": unknown name",
        ),
        (
            vec!["--service-cidr", "10.3.0.7/24"],
            "--service-cidr \"10.3.0.7/24\"",
        ),
        (
            vec!["--api-servers", "10.0.0.1:6443"],
            "must start with https://",
        ),
        (
            vec!["--bootstrap-secrets-dir", "relative"],
            "render options",
        ),
        (
            vec!["--node-names", "master-1,../etc"],
            "--node-names \"../etc\": is not a node name",
        ),
        (
            vec!["--node-names", "m1,m1"],
            "--node-names \"m1\": is given twice",
        ),
    ] {
        let out = render(&dir, &args);
        assert_fails(&out, 2, needle);
        assert!(!dir.exists(), "{args:?} wrote {}", dir.display());
    }
    let out = kubeboot(&["render"]);
    assert_eq!(out.status.code(), Some(2), "--asset-dir is required");
    // clap refuses the pair before anything runs (its own message, exit 2).
    let out = render(
        &dir,
        &[
            "--self-hosted-etcd",
            "--etcd-servers",
            "https://10.0.0.1:2379",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists());
}
