//! fake-kubelet against the fake api-server, checked with kube-rs the way `start` and the
//! checkpointer look: the Node is registered and Ready, a static pod gets a mirror pod
//! whose status says Running, and a pod created through the API for this node is run,
//! reported, and stopped when it is deleted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::kubelet::harness::{FakeKubelet, KubeletOptions, container_pid, pid_alive};
use serde_json::json;

const TEST_DEADLINE: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Some`, or fails naming `what`.
async fn until<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> Result<T> {
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

/// An api-server, a client of it, and a kubelet "node1" registered there that maps the
/// image `sleeper` to /bin/sleep.
async fn kubelet_on_api(labels: Option<&str>) -> Result<(Harness, kube::Client, FakeKubelet)> {
    let h = Harness::start().await?;
    let c = h.kube_client().await?;
    let opts = KubeletOptions {
        image_map: vec![("sleeper".into(), PathBuf::from("/bin/sleep"))],
        kubeconfig: Some(h.kubeconfig.clone()),
        node_labels: labels.map(String::from),
        ..Default::default()
    };
    let k = tokio::task::spawn_blocking(|| {
        FakeKubelet::start(env!("CARGO_BIN_EXE_fake-kubelet"), opts)
    })
    .await??;
    Ok((h, c, k))
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_registers_node_posts_mirror_pods_and_runs_bound_pods() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_h, c, k) = kubelet_on_api(Some("example.com/pool=masters")).await?;
        let sleeper = "  containers:\n  - {name: s, image: sleeper, command: [sleep, '300']}\n";
        k.write_manifest("s.yaml", &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: s, namespace: kube-system, ownerReferences: [{{apiVersion: v1, kind: Pod, name: s-node9, uid: u9, controller: true}}]}}\nspec:\n{sleeper}"))?;

        let nodes: Api<Node> = Api::all(c.clone());
        let node = until("node1 Ready", || async {
            let n = nodes.get_opt("node1").await.ok()??;
            let conds = n.status.as_ref()?.conditions.as_ref()?;
            conds.iter().any(|c| c.type_ == "Ready" && c.status == "True").then_some(n)
        })
        .await?;
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some("node1"));
        assert_eq!(labels.get("example.com/pool").map(String::as_str), Some("masters"));
        let st = node.status.unwrap();
        let ip = st.addresses.unwrap().into_iter().find(|a| a.type_ == "InternalIP").map(|a| a.address);
        assert_eq!(ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(st.daemon_endpoints.and_then(|d| d.kubelet_endpoint).map(|e| e.port), Some(i32::from(k.port)));
        let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
        until("node lease", || async { leases.get_opt("node1").await.ok()? }).await?;

        let system: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
        let mirror = until("mirror pod s-node1 Running", || async {
            let p = system.get_opt("s-node1").await.ok()??;
            (phase(&p) == Some("Running")).then_some(p)
        })
        .await?;
        let ann = mirror.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(ann.get("kubernetes.io/config.source").map(String::as_str), Some("file"));
        assert_eq!(ann.get("kubernetes.io/config.mirror"), ann.get("kubernetes.io/config.hash"));
        assert!(ann.contains_key("kubernetes.io/config.mirror"));
        // Owned by its Node, as controller (upstream `CreateMirrorPod`), whatever owners
        // the manifest declared.
        let owners = mirror.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!((owners[0].kind.as_str(), owners[0].name.as_str()), ("Node", "node1"));
        assert_eq!(Some(&owners[0].uid), node.metadata.uid.as_ref());
        assert_eq!(owners[0].controller, Some(true));

        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "bound", "namespace": "default"},
            "spec": {"nodeName": "node1", "containers": [{"name": "s", "image": "sleeper", "command": ["sleep", "300"]}]}}))?;
        pods.create(&PostParams::default(), &pod).await?;
        let running = until("pod bound Running in the API", || async {
            let p = pods.get_opt("bound").await.ok()??;
            (phase(&p) == Some("Running")).then_some(p)
        })
        .await?;
        let ready = running.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(ready, "{:?}", running.status);
        let pid = container_pid(&running, "s").expect("containerID fake-kubelet://<id ending in the pid>");
        assert!(pid_alive(pid));

        pods.delete("bound", &DeleteParams::default()).await?;
        until("pod bound stopped", || async { (!pid_alive(pid)).then_some(()) }).await?;
        until("pod bound gone from the API", || async { pods.get_opt("bound").await.ok()?.is_none().then_some(()) }).await?;
        drop(k);
        Ok(())
    })
    .await?
}

/// A pod created through the API and bound here whose host port a running static pod
/// declares is rejected at admission as upstream's kubelet does it (`rejectPod`: phase
/// `Failed`, reason `NodePorts`, nothing started), not held back until the port frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_pod_on_a_held_host_port_is_failed_with_reason_node_ports() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let (_h, c, k) = kubelet_on_api(None).await?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let container = format!("{{name: s, image: sleeper, command: [sleep, '300'], ports: [{{containerPort: {port}}}]}}");
        k.write_manifest("holder.yaml", &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: holder, namespace: kube-system}}\nspec:\n  hostNetwork: true\n  containers:\n  - {container}\n"))?;
        let system: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
        until("the static holder Running", || async {
            let p = system.get_opt("holder-node1").await.ok()??;
            (phase(&p) == Some("Running")).then_some(())
        })
        .await?;

        let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "late", "namespace": "kube-system"},
            "spec": {"nodeName": "node1", "hostNetwork": true, "containers": [{"name": "s", "image": "sleeper",
                "command": ["sleep", "300"], "ports": [{"containerPort": port}]}]}}))?;
        system.create(&PostParams::default(), &pod).await?;
        let failed = until("pod late Failed", || async {
            let p = system.get_opt("late").await.ok()??;
            (phase(&p) == Some("Failed")).then_some(p)
        })
        .await?;
        let st = failed.status.clone().unwrap_or_default();
        assert_eq!(st.reason.as_deref(), Some("NodePorts"), "{st:?}");
        let msg = st.message.unwrap_or_default();
        assert!(msg.contains("Predicate NodePorts failed"), "{msg}");
        assert!(st.container_statuses.unwrap_or_default().is_empty(), "nothing of a rejected pod starts");
        drop(k);
        Ok(())
    })
    .await?
}
