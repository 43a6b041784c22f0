//! Table-style tests of the DaemonSet plan, without servers.

use super::*;
use serde_json::{Value, json};

fn node(name: &str, labels: Value, taints: Value) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}}))
    .unwrap_or_default()
}

fn ds(strategy: Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 3},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": strategy,
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                "containers": [{"name": "c", "image": "agent:1"}],
                "nodeSelector": {"role": "worker"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "agent", "effect": "NoSchedule"}]
            }}
        }
    }))
    .unwrap_or_default()
}

fn pod(d: &DaemonSet, name: &str, node: &str, hash: &str, phase: &str, ready: bool) -> Pod {
    let mut p = new_pod(d, node, hash);
    // Scheduled: the scheduler bound it where its node affinity says.
    if let Some(s) = p.spec.as_mut() {
        s.node_name = Some(node.into());
    }
    p.metadata.name = Some(name.into());
    p.metadata.uid = Some(format!("{name}-uid"));
    p.status = serde_json::from_value(json!({"phase": phase,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}))
    .ok();
    p
}

fn cluster() -> Vec<Node> {
    vec![
        node("w1", json!({"role": "worker"}), json!([])),
        node(
            "w2",
            json!({"role": "worker"}),
            json!([{"key": "dedicated", "value": "agent", "effect": "NoSchedule"}]),
        ),
        node(
            "w3",
            json!({"role": "worker"}),
            json!([{"key": "dedicated", "value": "other", "effect": "NoExecute"}]),
        ),
        node("m1", json!({"role": "master"}), json!([])),
    ]
}

fn creates(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter_map(|a| match a {
            Action::CreatePod(p) => Some(target_node(p).to_string()),
            _ => None,
        })
        .collect()
}

fn deletes(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter_map(|a| match a {
            Action::DeletePod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn status(a: &[Action]) -> Value {
    a.iter()
        .find_map(|a| match a {
            Action::Status { status, .. } => Some(status.clone()),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

fn current(d: &DaemonSet) -> String {
    hash::template_hash(&d.spec.clone().unwrap_or_default().template)
}

#[test]
fn one_unbound_pod_per_eligible_node_with_its_node_affinity() {
    let d = ds(json!({}));
    let a = plan(&d, &cluster(), &[]);
    assert_eq!(creates(&a), ["w1", "w2"]);
    let Some(Action::CreatePod(p)) = a.first() else {
        panic!("expected a create first: {a:?}");
    };
    // Left to the scheduler: no nodeName, one required term naming the node.
    assert_eq!(pods::node_name(p), "");
    let na =
        serde_json::to_value(p.spec.as_ref().and_then(|s| s.affinity.clone())).unwrap_or_default();
    assert_eq!(
        na["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
        json!({"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["w1"]}]}]})
    );
    assert_eq!(p.metadata.generate_name.as_deref(), Some("agent-"));
    let labels = p.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(REVISION_HASH), Some(&current(&d)));
    assert_eq!(labels.get("app").map(String::as_str), Some("agent"));
    let owner = p.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owner
            .first()
            .map(|o| (o.controller, o.block_owner_deletion)),
        Some((Some(true), Some(true)))
    );
    assert_eq!(status(&a)["desiredNumberScheduled"], 2);
    assert_eq!(status(&a)["currentNumberScheduled"], 0);
    assert_eq!(status(&a)["observedGeneration"], 3);
}

#[test]
fn pods_on_ineligible_nodes_and_extras_and_finished_ones_go() {
    let d = ds(json!({}));
    let h = current(&d);
    let pods = [
        pod(&d, "on-master", "m1", &h, "Running", true),
        pod(&d, "w1-a", "w1", &h, "Running", true),
        pod(&d, "w1-b", "w1", &h, "Running", true),
        pod(&d, "w2-failed", "w2", &h, "Failed", false),
    ];
    let a = plan(&d, &cluster(), &pods);
    let mut gone = deletes(&a);
    gone.sort();
    assert_eq!(gone, ["on-master", "w1-b", "w2-failed"]);
    assert_eq!(creates(&a), ["w2"]);
    assert_eq!(status(&a)["numberMisscheduled"], 1);
}

#[test]
fn settled_daemonset_writes_nothing() {
    let mut d = ds(json!({}));
    let h = current(&d);
    let pods = [
        pod(&d, "a", "w1", &h, "Running", true),
        pod(&d, "b", "w2", &h, "Running", true),
    ];
    let first = plan(&d, &cluster(), &pods);
    d.status = serde_json::from_value(status(&first)).ok();
    assert_eq!(d.status.as_ref().map(|s| s.number_ready), Some(2));
    assert_eq!(plan(&d, &cluster(), &pods), []);
}

#[test]
fn rolling_update_replaces_one_ready_pod_at_a_time() {
    let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
    let pods = [
        pod(&d, "a", "w1", "old", "Running", true),
        pod(&d, "b", "w2", "old", "Running", true),
    ];
    assert_eq!(deletes(&plan(&d, &cluster(), &pods)), ["a"]);
    // While w1 has no ready pod, w2's stays.
    let h = current(&d);
    let mid = [
        pod(&d, "a2", "w1", &h, "Running", false),
        pod(&d, "b", "w2", "old", "Running", true),
    ];
    assert_eq!(deletes(&plan(&d, &cluster(), &mid)), Vec::<String>::new());
}

#[test]
fn stale_unready_pods_go_at_once_and_on_delete_keeps_stale_pods() {
    let d = ds(json!({}));
    let pods = [
        pod(&d, "a", "w1", "old", "Running", false),
        pod(&d, "b", "w2", "old", "Running", false),
    ];
    assert_eq!(deletes(&plan(&d, &cluster(), &pods)), ["a", "b"]);
    let od = ds(json!({"type": "OnDelete"}));
    assert_eq!(deletes(&plan(&od, &cluster(), &pods)), Vec::<String>::new());
}

#[test]
fn max_unavailable_scaling() {
    assert_eq!(max_unavailable(None, 10), 1);
    assert_eq!(max_unavailable(Some(&IntOrString::Int(0)), 10), 1);
    assert_eq!(max_unavailable(Some(&IntOrString::Int(3)), 10), 3);
    assert_eq!(
        max_unavailable(Some(&IntOrString::String("25%".into())), 10),
        3
    );
    assert_eq!(
        max_unavailable(Some(&IntOrString::String("bad".into())), 10),
        1
    );
}

#[test]
fn an_unreachable_node_keeps_its_daemon_pod_but_gets_no_new_one() {
    let d = ds(json!({}));
    let h = current(&d);
    let unreachable = json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]);
    let nodes = vec![
        node("w1", json!({"role": "worker"}), json!([])),
        node("dead", json!({"role": "worker"}), unreachable.clone()),
        node("dead-empty", json!({"role": "worker"}), unreachable),
    ];
    // The dead node's pod was marked not Ready by the node lifecycle controller.
    let pods = [
        pod(&d, "a1", "w1", &h, "Running", true),
        pod(&d, "a2", "dead", &h, "Running", false),
    ];
    let a = plan(&d, &nodes, &pods);
    assert!(deletes(&a).is_empty(), "{a:?}");
    assert!(creates(&a).is_empty(), "{a:?}");
    let st = status(&a);
    assert_eq!(st["desiredNumberScheduled"], json!(1));
    assert_eq!(st["numberMisscheduled"], json!(1));
    assert_eq!(st["numberReady"], json!(1));
}
