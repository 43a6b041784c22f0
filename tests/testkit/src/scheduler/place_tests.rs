//! Placement tests, without servers.

use super::*;
use serde_json::{Value, json};

fn node(name: &str, labels: Value, taints: Value, ready: bool) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
    .unwrap_or_default()
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap_or_default()
}

fn owned(name: &str, owner: &str, node: &str) -> Pod {
    pod(
        json!({"metadata": {"name": name, "uid": name, "namespace": "default", "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": owner, "controller": true}]},
        "spec": {"containers": [], "nodeName": node}, "status": {"phase": "Running"}}),
    )
}

fn nodes() -> Vec<Node> {
    vec![
        node("a", json!({"role": "worker"}), json!([]), true),
        node("b", json!({"role": "worker"}), json!([]), true),
        node(
            "m",
            json!({"role": "master"}),
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            true,
        ),
        // A node that is not Ready, as the node lifecycle controller leaves it.
        node(
            "down",
            json!({"role": "worker"}),
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
            false,
        ),
    ]
}

#[test]
fn who_is_scheduled() {
    assert!(wants_scheduling(&pod(json!({"spec": {"containers": []}}))));
    assert!(wants_scheduling(&pod(
        json!({"spec": {"containers": [], "schedulerName": "default-scheduler"}})
    )));
    assert!(!wants_scheduling(&pod(
        json!({"spec": {"containers": [], "schedulerName": "other"}})
    )));
    assert!(!wants_scheduling(&pod(
        json!({"spec": {"containers": [], "nodeName": "a"}})
    )));
    assert!(!wants_scheduling(&pod(
        json!({"spec": {"containers": []}, "status": {"phase": "Failed"}})
    )));
}

#[test]
fn spreads_by_owner_then_name() {
    let p = owned("new", "rs1", "");
    assert_eq!(place(&p, &nodes(), &[]), Decision::Bind("a".into()));
    let placed = [owned("x", "rs1", "a")];
    assert_eq!(place(&p, &nodes(), &placed), Decision::Bind("b".into()));
    let other_owner = [owned("y", "rs2", "a")];
    assert_eq!(
        place(&p, &nodes(), &other_owner),
        Decision::Bind("a".into())
    );
}

#[test]
fn preferred_anti_affinity_on_hostname_spreads_too() {
    let p = pod(
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname"}}]}}}}),
    );
    let placed = [owned("x", "rs9", "a")];
    assert_eq!(place(&p, &nodes(), &placed), Decision::Bind("b".into()));
}

#[test]
fn selector_taints_and_affinity_filter() {
    let master = pod(
        json!({"spec": {"containers": [], "nodeSelector": {"role": "master"},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(place(&master, &nodes(), &[]), Decision::Bind("m".into()));
    let by_name = pod(
        json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}}),
    );
    assert_eq!(place(&by_name, &nodes(), &[]), Decision::Bind("b".into()));
    let not_worker = pod(
        json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "role", "operator": "NotIn", "values": ["worker"]}]}]}}}}}),
    );
    assert_eq!(
        place(&not_worker, &nodes(), &[]),
        Decision::Unschedulable(
            "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
             1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
                .into()
        )
    );
    assert_eq!(
        place(&not_worker, &[], &[]),
        Decision::Unschedulable("no nodes available to schedule pods".into())
    );
}

#[test]
fn a_host_port_in_use_keeps_the_pod_off_that_node() {
    // As stored: the api-server defaulted hostPort from containerPort (hostNetwork); a
    // containerPort alone claims no host port.
    let with_port = |name: &str, node: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "kube-system", "uid": name},
            "spec": {"nodeName": node, "hostNetwork": true,
                     "containers": [{"name": "c", "ports": [{"containerPort": 10259, "hostPort": 10259}]}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    };
    let running = with_port("a", "m1");
    let mut pending = with_port("b", "");
    pending.spec.as_mut().unwrap().node_name = None;
    let ready = |name: &str| -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    };
    let all = [running.clone(), pending.clone()];
    assert_eq!(place(&pending, &[ready("m1")], &all), Decision::Unschedulable(
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.".into()
    ));
    assert_eq!(
        place(&pending, &[ready("m1"), ready("m2")], &all),
        Decision::Bind("m2".into())
    );
    let mut undefaulted = pending.clone();
    if let Some(p) = undefaulted
        .spec
        .as_mut()
        .and_then(|s| s.containers.first_mut())
        .and_then(|c| c.ports.as_mut())
        .and_then(|p| p.first_mut())
    {
        p.host_port = None;
    }
    assert_eq!(
        place(&undefaulted, &[ready("m1")], &all),
        Decision::Bind("m1".into())
    );
}
