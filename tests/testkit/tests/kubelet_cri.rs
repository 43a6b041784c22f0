//! fake-kubelet's CRI v1 socket, read with kubeboot's own CRI client: a static pod is a
//! READY sandbox labelled and annotated as the real kubelet does it
//! (`pkg/kubelet/kuberuntime/labels.go`), its started containers are RUNNING or EXITED,
//! and the sandbox stops being READY once the pod is gone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kubeboot::cri::proto::ContainerState;
use kubeboot::cri::{Runtime, SandboxPod};
use kubeboot_testkit::kubelet::harness::{FakeKubelet, KubeletOptions};

const WAIT: Duration = Duration::from_secs(30);

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f().await {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const MANIFEST: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: kube-system
  labels: {app: web}
  annotations: {checkpointer.alpha.coreos.com/checkpoint: "true"}
spec:
  containers:
  - name: server
    image: sleeper
    command: [/bin/sleep, "600"]
  - name: once
    image: busybox
    command: [/bin/sh, -c, "exit 0"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_sandboxes_and_containers_as_the_kubelet_labels_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("containerd.sock");
    let opts = KubeletOptions {
        image_map: vec![
            ("sleeper".into(), PathBuf::from("/bin/sleep")),
            ("busybox".into(), PathBuf::from("/bin/sh")),
        ],
        extra_args: vec![format!(
            "--container-runtime-endpoint=unix://{}",
            socket.display()
        )],
        ..Default::default()
    };
    let kubelet = tokio::task::spawn_blocking(move || {
        FakeKubelet::start(env!("CARGO_BIN_EXE_fake-kubelet"), opts)
    })
    .await??;
    let rt = Runtime::new(&socket, Duration::from_secs(2));
    assert!(
        rt.ready_pods()
            .await
            .map_err(anyhow::Error::msg)?
            .is_empty(),
        "no pod yet"
    );
    kubelet.write_manifest("web.yaml", MANIFEST)?;

    let pod: SandboxPod = until("the pod's sandbox READY", async || {
        let pods = rt.ready_pods().await.ok()?;
        pods.into_iter().find(|p| p.name == "web-node1")
    })
    .await?;
    assert_eq!(pod.namespace, "kube-system");
    assert!(!pod.uid.is_empty());
    assert_eq!(pod.labels.get("app").map(String::as_str), Some("web"));
    assert!(
        !pod.labels
            .keys()
            .any(|k| k.starts_with("io.kubernetes.pod.")),
        "the kubelet's own labels are read as identity, not as the pod's labels"
    );
    assert_eq!(
        pod.annotations
            .get("checkpointer.alpha.coreos.com/checkpoint")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        pod.annotations
            .get("kubernetes.io/config.source")
            .map(String::as_str),
        Some("file"),
        "a static pod's annotations as the kubelet holds them"
    );

    let id = pod.sandbox_id.clone();
    until("server RUNNING and once EXITED", async || {
        let cs = rt.containers(Some(&id)).await.ok()?;
        let state = |n: &str| cs.iter().find(|c| c.name == n).map(|c| c.state);
        let ok = state("server") == Some(ContainerState::ContainerRunning)
            && state("once") == Some(ContainerState::ContainerExited);
        ok.then_some(())
    })
    .await?;
    let cs = rt.containers(Some(&id)).await.map_err(anyhow::Error::msg)?;
    assert!(
        cs.iter()
            .all(|c| c.sandbox_id == id && c.pod == "web-node1" && c.namespace == "kube-system")
    );
    // The status names the running container by the id the runtime lists, as
    // `<runtime>://<id>` (what `ensure` matches to believe a status is current).
    let server = cs.iter().find(|c| c.name == "server").map(|c| c.id.clone());
    let pods = tokio::task::block_in_place(|| kubelet.pods())?;
    let named = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("web-node1"))
        .and_then(|p| p.status.as_ref()?.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == "server")?.container_id.clone());
    assert_eq!(named, server.map(|id| format!("fake-kubelet://{id}")));
    assert!(cs.iter().all(|c| {
        Some(c.pod_uid.as_str())
            == pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some("web-node1"))
                .and_then(|p| p.metadata.uid.as_deref())
    }));
    assert!(
        rt.containers(Some("no-such-sandbox"))
            .await
            .map_err(anyhow::Error::msg)?
            .is_empty()
    );

    std::fs::remove_file(kubelet.manifest_dir.join("web.yaml"))?;
    until("the sandbox no longer READY", async || {
        let pods = rt.ready_pods().await.ok()?;
        (!pods.iter().any(|p| p.sandbox_id == id)).then_some(())
    })
    .await?;
    drop(kubelet);
    Ok(())
}
