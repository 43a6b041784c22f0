//! `ensure` on a healthy node believes a Ready status from before it started when the
//! node's container runtime runs the very containers the status names
//! (`src/ensure/witness.rs`), and only then: without the runtime the status must wait
//! out `--status-settle` (bootkube #601).
//!
//! Against doubles: the api-server and the kubelet (with its CRI socket) are the
//! testkit's; etcd is real. `--status-settle 1h` makes the settle rule unable to pass in
//! the test's time, so a healthy verdict can only come from the runtime's word.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::kubelet::harness::KubeletOptions;
use serde_json::json;

mod checkpoint_support;
mod common;

use checkpoint_support::{admin_client, fake_kubelet, node_root, start_kubelet};

const TEST_DEADLINE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_naming_the_running_containers_is_believed_at_once() -> Result<()> {
    let kubelet_bin = tokio::task::spawn_blocking(fake_kubelet).await?;
    tokio::time::timeout(TEST_DEADLINE, healthy_node(kubelet_bin))
        .await
        .context("test deadline")?
}

async fn healthy_node(kubelet_bin: PathBuf) -> Result<()> {
    let h = Harness::start().await?;
    let client = admin_client(&h).await?;
    let work = tempfile::tempdir()?;
    let (root, cri) = node_root(work.path())?;
    let opts = KubeletOptions {
        image_map: vec![("sleeper".into(), PathBuf::from("/bin/sleep"))],
        kubeconfig: Some(h.kubeconfig.clone()),
        node_root: Some(root.clone()),
        extra_args: vec![format!(
            "--container-runtime-endpoint=unix://{}",
            cri.display()
        )],
        ..Default::default()
    };
    let kubelet = start_kubelet(&kubelet_bin, opts).await?;

    // A pod of the DaemonSet kube-system/web, bound to this node.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web-abcde", "namespace": "kube-system",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                "name": "web", "uid": "ds-uid", "controller": true}]},
        "spec": {"nodeName": "node1", "containers": [
            {"name": "a", "image": "sleeper", "command": ["sleep", "600"]},
            {"name": "b", "image": "sleeper", "command": ["sleep", "600"]}]}
    }))?;
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
    pods.create(&PostParams::default(), &pod).await?;
    let ready = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    // Polled every 100 ms for at most a minute.
    for _ in 0..600 {
        if pods.get_opt("web-abcde").await?.is_some_and(|p| ready(&p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = pods.get("web-abcde").await?;
    assert!(ready(&p), "web-abcde never became Ready: {:?}", p.status);

    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    let kubeconfig = s(h.kubeconfig.clone());
    let healthz = format!("http://127.0.0.1:{}/healthz", kubelet.healthz_port);
    let ensure = |cri_socket: String| {
        let w = work.path();
        let args: Vec<String> = [
            "ensure",
            "--kubeconfig",
            &kubeconfig,
            "--kubelet-healthz-url",
            &healthz,
            "--kubelet-unit=",
            "--node-name",
            "node1",
            "--required-pods",
            "kube-system/web",
            "--status-settle",
            "1h",
            "--boot-grace",
            "3s",
            "--poll-interval",
            "200ms",
            "--request-timeout",
            "5s",
            "--backup-dir",
            &s(w.join("backups")),
            "--recovery-root",
            &s(w.join("recovery")),
            "--pod-manifest-path",
            &s(root.join("etc/kubernetes/manifests")),
            "--bootstrap-secrets-dir",
            &s(w.join("bootstrap-secrets")),
            "--lock-file",
            &s(w.join("start.lock")),
            "--etcd-data-dir",
            &s(w.join("etcd-data")),
            "--cri-socket",
            &cri_socket,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::kubeboot(&args)
    };

    let vouched = tokio::task::block_in_place(|| ensure(format!("unix://{}", cri.display())));
    assert_eq!(
        vouched.status.code(),
        Some(0),
        "with the runtime's word: {}",
        common::stderr(&vouched)
    );
    assert!(
        common::stderr(&vouched).contains("control plane healthy"),
        "{}",
        common::stderr(&vouched)
    );

    // No runtime: the same Ready, from before ensure started, is not believed; after
    // the boot grace it is reported un-Ready (exit 6), never recovered.
    let settling = tokio::task::block_in_place(|| ensure(String::new()));
    let err = common::stderr(&settling);
    assert_eq!(settling.status.code(), Some(6), "without it: {err}");
    assert!(err.contains("from before start; confirming"), "{err}");
    assert!(!work.path().join("recovery").exists(), "nothing recovered");

    // A runtime that does not answer vouches for nothing, and says so once.
    let gone = work.path().join("no-such.sock");
    let silent = tokio::task::block_in_place(|| ensure(s(gone.clone())));
    let err = common::stderr(&silent);
    assert_eq!(silent.status.code(), Some(6), "{err}");
    assert_eq!(err.matches(&*gone.to_string_lossy()).count(), 1, "{err}");
    drop(kubelet);
    Ok(())
}
