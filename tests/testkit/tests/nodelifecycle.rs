//! fake-controller-manager's node lifecycle and taint eviction controllers, and the
//! api-server's DefaultTolerationSeconds admission, against a real etcd: a node whose
//! Lease stops being renewed goes `Ready=Unknown`, gets the `unreachable` taints, its
//! pods lose Ready, a pod tolerating the taint for 1 s is evicted, one with the default
//! 300 s and a daemon-like one stay bound; when the kubelet is back the taints go.

#[path = "controllers_support.rs"]
mod support;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use serde_json::{Value, json};
use support::*;

const CM: &str = env!("CARGO_BIN_EXE_fake-controller-manager");

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// What a kubelet does every few seconds: renew its Lease and post Ready.
async fn heartbeat(c: &kube::Client, node: &str) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let spec = json!({"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now()});
    if leases.get_opt(node).await?.is_none() {
        let l: Lease = serde_json::from_value(
            json!({"metadata": {"name": node, "namespace": "kube-node-lease"}, "spec": spec}),
        )?;
        leases.create(&PostParams::default(), &l).await?;
    } else {
        leases
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await?;
    }
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
        "lastHeartbeatTime": now(), "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    Api::<Node>::all(c.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

async fn bound_pod(c: &kube::Client, name: &str, node: &str, tolerations: Value) -> Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "x"}]});
    if !tolerations.is_null() {
        spec["tolerations"] = tolerations;
    }
    let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}))?;
    let made = pods.create(&PostParams::default(), &p).await?;
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now()}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(made)
}

fn ready_of(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or_else(String::new, |c| c.status.clone())
}

fn taints_of(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_unknown_is_tainted_and_its_pods_lose_ready() -> Result<()> {
    run_test(|logs| async move {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        create_nodes(&c, vec![node("live", json!({}), json!([]), true)?, node("dead", json!({}), json!([]), true)?]).await?;
        for n in ["live", "dead"] {
            heartbeat(&c, n).await?;
        }
        // DefaultTolerationSeconds: a pod created without them gets both, 300 s.
        let web = bound_pod(&c, "web", "dead", Value::Null).await?;
        let tols = serde_json::to_value(web.spec.and_then(|s| s.tolerations))?;
        ensure!(tols == json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
            "admitted tolerations {tols}");
        bound_pod(&c, "quick", "dead", json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 1}])).await?;
        bound_pod(&c, "daemon", "dead", json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}])).await?;
        bound_pod(&c, "fine", "live", Value::Null).await?;

        let _cm = Proc::start(CM, &flags(&h, &["--node-monitor-grace-period=3s", "--node-monitor-period=500ms"]), "cm", &logs)?;
        let nodes: Api<Node> = Api::all(c.clone());
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        // Only `live` keeps its kubelet.
        let dead_node = eventually("dead to be Unknown and tainted", STEP, || async {
            heartbeat(&c, "live").await?;
            let n = nodes.get("dead").await?;
            let ready = n.status.as_ref().and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready")).cloned().context("no Ready")?;
            ensure!(ready.status == "Unknown", "Ready is {}", ready.status);
            ensure!(taints_of(&n).len() == 2, "taints {:?}", taints_of(&n));
            Ok(n)
        }).await?;
        let ready = dead_node.status.and_then(|s| s.conditions).unwrap_or_default().into_iter()
            .find(|c| c.type_ == "Ready").context("no Ready")?;
        ensure!(ready.reason.as_deref() == Some("NodeStatusUnknown")
            && ready.message.as_deref() == Some("Kubelet stopped posting node status."), "{ready:?}");
        let mut t = taints_of(&nodes.get("dead").await?);
        t.sort();
        ensure!(t == ["node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"], "{t:?}");
        eventually("quick evicted, the others bound but not Ready", STEP, || async {
            heartbeat(&c, "live").await?;
            ensure!(pods.get_opt("quick").await?.is_none(), "quick still there");
            for name in ["web", "daemon"] {
                let p = pods.get(name).await?;
                ensure!(ready_of(&p) == "False", "{name} Ready is {}", ready_of(&p));
                ensure!(p.spec.and_then(|s| s.node_name).as_deref() == Some("dead"), "{name} moved");
            }
            Ok(())
        }).await?;
        let live = nodes.get("live").await?;
        ensure!(taints_of(&live).is_empty(), "live tainted: {:?}", taints_of(&live));
        ensure!(ready_of(&pods.get("fine").await?) == "True", "fine lost Ready");
        // The kubelet comes back: the taints go.
        eventually("dead's taints removed once it is back", STEP, || async {
            heartbeat(&c, "live").await?;
            heartbeat(&c, "dead").await?;
            let n = nodes.get("dead").await?;
            ensure!(taints_of(&n).is_empty(), "taints {:?}", taints_of(&n));
            Ok(())
        }).await?;
        ensure!(pods.get_opt("web").await?.is_some(), "web evicted before its 300 s");
        Ok(())
    })
    .await
}
