//! The checkpointer as its DaemonSet runs it: a pod of the fake-kubelet, with the
//! rendered command's explicit paths, hostPath mounts of the node's `/etc/kubernetes`
//! and `/var/run`, and `NODE_NAME`/`POD_NAME`/`POD_NAMESPACE` from the downward API.
//! The kubelet rewrites the paths in its argv (the test's mount namespace), all but
//! `--host-checkpoint-dir`, so the manifests it writes name the paths the kubelet sees.
//!
//! The reboot of a master in miniature: the pod checkpoints itself, and its static copy
//! waits for the lock beside it; a parent is saved; then the api-server goes and the
//! kubelet restarts, so only static pods run: the checkpointer's copy takes the lock and
//! starts the parent's checkpoint, which reads its Secret through the saved hostPath.
//!
//! The kubelet's ports refuse the checkpointer throughout, as a default kubelet's do
//! after a power-off: no read-only port, and a 10250 that cannot prove it is the kubelet
//! (the double's is plain HTTP, so the checkpointer's TLS verification fails). What runs
//! comes from the runtime's CRI socket, which the fake kubelet serves under the node's
//! `/var/run` and the rendered DaemonSet's `--cri-socket` names through its mount.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::kubelet::harness::{FakeKubelet, KubeletOptions};
use serde_json::json;

mod checkpoint_support;

use checkpoint_support::{admin_client, fake_kubelet, free_port, node_root, start_kubelet, until};

const TEST_DEADLINE: Duration = Duration::from_secs(300);
const SECRET_VALUE: &str = "pod-mode-secret";
const SELF_POD: &str = "pod-checkpointer-fghij";

/// The checkpointer's pod, as the rendered DaemonSet's template makes it.
fn checkpointer_pod(kubeconfig: &str, port: u16) -> Result<Pod> {
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    Ok(serde_json::from_value(json!({
        "metadata": {"name": SELF_POD, "namespace": "kube-system",
            "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                "name": "pod-checkpointer", "uid": "ds-uid", "controller": true}]},
        "spec": {
            "nodeName": "node1",
            "hostNetwork": true,
            "containers": [{
                "name": "pod-checkpointer", "image": "kubeboot",
                "command": ["kubeboot", "checkpoint",
                    format!("--kubeconfig={kubeconfig}"),
                    "--pod-manifest-path=/etc/kubernetes/manifests",
                    "--checkpoint-dir=/etc/kubernetes/checkpoints",
                    "--host-checkpoint-dir=/etc/kubernetes/checkpoints",
                    "--lock-file=/var/run/kubeboot/checkpointer.lock",
                    // The rendered DaemonSet's socket, through the /var/run mount.
                    "--cri-socket=/var/run/containerd/containerd.sock",
                    // The fake's 10250 speaks plain HTTP: the TLS handshake fails, as
                    // against a listener that cannot prove it is the kubelet.
                    format!("--kubelet-url=https://127.0.0.1:{port}"),
                    "--interval=300ms", "--checkpoint-grace-period=2s", "--request-timeout=2s",
                    // The parent lives in `default`, which must be allowed explicitly.
                    "--checkpoint-namespaces=kube-system,default"],
                "env": [
                    {"name": "NODE_NAME", "valueFrom": field("spec.nodeName")},
                    {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                    {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
                    {"name": "HOST_IP", "valueFrom": field("status.hostIP")}
                ],
                "volumeMounts": [
                    {"name": "etc-kubernetes", "mountPath": "/etc/kubernetes"},
                    {"name": "var-run", "mountPath": "/var/run"}
                ]
            }],
            "volumes": [
                {"name": "etc-kubernetes", "hostPath": {"path": "/etc/kubernetes", "type": "Directory"}},
                {"name": "var-run", "hostPath": {"path": "/var/run", "type": "Directory"}}
            ]
        }
    }))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_set_pod_and_its_static_copy_bring_a_checkpoint_back_after_a_reboot()
-> Result<()> {
    let kubelet_bin = tokio::task::spawn_blocking(fake_kubelet).await?;
    tokio::time::timeout(TEST_DEADLINE, reboot(kubelet_bin))
        .await
        .context("test deadline")?
}

async fn reboot(kubelet_bin: PathBuf) -> Result<()> {
    let h = Harness::start().await?;
    let client = admin_client(&h).await?;
    let work = tempfile::tempdir()?;
    let (root, cri) = node_root(work.path())?;
    // The kubelet's defaults: no read-only port. Its 10250 refuses the checkpointer
    // (see checkpointer_pod), so what runs comes from the CRI socket only.
    let port = free_port();
    let opts = KubeletOptions {
        image_map: vec![
            ("tailer".into(), PathBuf::from("/usr/bin/tail")),
            (
                "kubeboot".into(),
                PathBuf::from(env!("CARGO_BIN_EXE_kubeboot")),
            ),
        ],
        kubeconfig: Some(h.kubeconfig.clone()),
        node_root: Some(root.clone()),
        extra_args: vec![
            format!("--port={port}"),
            "--read-only-port=0".into(),
            format!("--container-runtime-endpoint=unix://{}", cri.display()),
        ],
        ..Default::default()
    };
    let mut kubelet = start_kubelet(&kubelet_bin, opts.clone()).await?;

    let pp = PostParams::default();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "web-secret", "namespace": "default"},
        "stringData": {"password": SECRET_VALUE}
    }))?;
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&pp, &secret)
        .await?;
    let parent: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default",
            "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"}},
        "spec": {"nodeName": "node1", "containers": [{
            "name": "web", "image": "tailer",
            "command": ["tail", "-f", "/etc/secret/password"],
            "volumeMounts": [{"name": "secret", "mountPath": "/etc/secret"}]}],
            "volumes": [{"name": "secret", "secret": {"secretName": "web-secret"}}]}
    }))?;
    Api::<Pod>::namespaced(client.clone(), "default")
        .create(&pp, &parent)
        .await?;
    let kubeconfig = h.kubeconfig.to_string_lossy().into_owned();
    Api::<Pod>::namespaced(client.clone(), "kube-system")
        .create(&pp, &checkpointer_pod(&kubeconfig, port)?)
        .await?;

    let etc = root.join("etc/kubernetes");
    let saved = etc.join("checkpoints/saved/kubeboot-checkpoint_default_web.json");
    let copy = format!("{SELF_POD}-node1");
    let log = |k: &FakeKubelet, pod: &str| k.container_log("kube-system", pod, "pod-checkpointer");
    until(
        "the parent saved, the static copy of the checkpointer waiting",
        || {
            let standby = log(&kubelet, &copy).contains("standby");
            (saved.is_file() && standby).then_some(())
        },
    )
    .await
    .with_context(|| format!("{}\n{}", log(&kubelet, SELF_POD), kubelet.log_tail()))?;
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved)?)?;
    assert_eq!(
        manifest["spec"]["volumes"][0]["hostPath"]["path"],
        "/etc/kubernetes/checkpoints/secrets/default/web/secret",
        "the manifest names the path as the kubelet sees it"
    );
    let own = etc.join(format!(
        "checkpoints/saved/kubeboot-checkpoint_kube-system_{SELF_POD}.json"
    ));
    assert!(
        own.is_file(),
        "the checkpointer's pod name, not its copy's, keys it"
    );
    assert!(
        !log(&kubelet, SELF_POD).contains("standby"),
        "the DaemonSet pod took the lock first"
    );

    // The reboot: no api-server, and the kubelet comes back knowing only static pods.
    drop(h.server);
    kubelet.terminate(Duration::from_secs(20))?;
    let kubelet2 = start_kubelet(&kubelet_bin, opts).await?;
    // What runs is read as the checkpointer reads it, from the runtime's socket: the
    // kubelet's 10250 refuses everyone while it cannot ask the api-server.
    let runtime = kubeboot::cri::Runtime::new(&cri, Duration::from_secs(2));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    async {
        loop {
            let out = kubelet2.container_log("default", "web-node1", "web");
            let pods = runtime.ready_pods().await.unwrap_or_default();
            if pods.iter().any(|p| p.name == "web-node1") && out.contains(SECRET_VALUE) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the parent's checkpoint running, started by the checkpointer's copy: timed out"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    .await
    .with_context(|| format!("{}\n{}", log(&kubelet2, &copy), kubelet2.log_tail()))?;
    let copy_log = log(&kubelet2, &copy);
    assert!(
        copy_log.contains("activated the checkpoint of default/web"),
        "{copy_log}"
    );
    assert!(
        !copy_log.contains("what runs here is unknown") && !copy_log.contains("CRI socket"),
        "the CRI socket answered every cycle:\n{copy_log}"
    );
    drop(kubelet2);
    Ok(())
}
