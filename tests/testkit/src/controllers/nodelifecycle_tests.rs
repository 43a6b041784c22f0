//! Node lifecycle passes, without servers: a clock in seconds, nodes and leases as JSON.

use super::*;
use serde_json::{Value, json};

fn at(s: i64) -> Timestamp {
    Timestamp::UNIX_EPOCH
        .checked_add(SignedDuration::from_secs(1_000_000 + s))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn node(name: &str, ready: &str, heartbeat: i64, taints: Value) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": at(-1000).to_string()},
        "spec": {"taints": taints},
        "status": {"conditions": [
            {"type": "Ready", "status": ready, "reason": "KubeletReady",
             "lastHeartbeatTime": at(heartbeat).to_string(), "lastTransitionTime": at(-1000).to_string()},
            {"type": "MemoryPressure", "status": "False"}]}}))
    .unwrap_or_default()
}

fn lease(name: &str, renew: i64) -> Lease {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "renewTime": at(renew).to_string()}}),
    )
    .unwrap_or_default()
}

fn pod(name: &str, node: &str, ready: &str) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "kube-system", "uid": name},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": ready, "lastTransitionTime": at(-500).to_string()}]}}),
    )
    .unwrap_or_default()
}

fn flags() -> NodeFlags {
    NodeFlags::default()
}

/// Applies a pass's node writes to `nodes`, as the api-server would.
fn apply(nodes: &mut [Node], pass: &Pass) {
    for a in &pass.writes {
        match a {
            Action::NodeStatus(n) => {
                if let Some(x) = nodes
                    .iter_mut()
                    .find(|x| x.metadata.name == n.metadata.name)
                {
                    x.status = n.status.clone();
                }
            }
            Action::NodeTaints { name, taints } => {
                if let Some(x) = nodes
                    .iter_mut()
                    .find(|x| x.metadata.name.as_ref() == Some(name))
                {
                    x.spec.get_or_insert_with(Default::default).taints = Some(taints.clone());
                }
            }
            _ => {}
        }
    }
}

fn ready(n: &Node, type_: &str) -> (String, String, String) {
    condition(n, type_).map_or_else(Default::default, |c| {
        (
            c.status.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    })
}

fn taint_keys(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect()
}

#[test]
fn a_silent_node_goes_unknown_after_the_grace_period_and_is_tainted() {
    let mut lc = Lifecycle::new(flags());
    let mut nodes = vec![
        node("live", "True", 0, json!([])),
        node("dead", "True", 0, json!([])),
    ];
    let pods = vec![
        pod("api-live", "live", "True"),
        pod("api-dead", "dead", "True"),
    ];
    // Both renew at t=0; only `live` keeps renewing.
    let p = lc.monitor(&nodes, &[lease("live", 0), lease("dead", 0)], &pods, at(0));
    assert!(p.writes.is_empty() && p.mark.is_empty(), "{p:?}");
    for t in [10, 30, 50] {
        let p = lc.monitor(&nodes, &[lease("live", t), lease("dead", 0)], &pods, at(t));
        assert!(p.writes.is_empty(), "at {t}: {p:?}");
    }
    // 51 s of silence: more than the 50 s grace.
    let p = lc.monitor(
        &nodes,
        &[lease("live", 51), lease("dead", 0)],
        &pods,
        at(51),
    );
    apply(&mut nodes, &p);
    let dead = &nodes[1];
    assert_eq!(
        ready(dead, "Ready"),
        (
            "Unknown".into(),
            "NodeStatusUnknown".into(),
            "Kubelet stopped posting node status.".into()
        )
    );
    assert_eq!(ready(dead, "MemoryPressure").0, "Unknown");
    assert_eq!(ready(dead, "DiskPressure").1, "NodeStatusNeverUpdated");
    // NoSchedule at once; NoExecute from the next pass (it follows the observed condition).
    assert_eq!(
        taint_keys(dead),
        ["node.kubernetes.io/unreachable:NoSchedule"]
    );
    assert_eq!(ready(&nodes[0], "Ready").0, "True");
    // MarkPodsNotReady: only the dead node's pods.
    let marks = p.mark.get("dead").cloned().unwrap_or_default();
    let Some(Action::PodStatus(marked)) = marks.first() else {
        panic!("no pod marked: {p:?}");
    };
    assert_eq!(marked.metadata.name.as_deref(), Some("api-dead"));
    let c = marked
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    assert!(c.iter().any(|c| c.type_ == "Ready"
        && c.status == "False"
        && c.last_transition_time.as_ref().map(|t| t.0) == Some(at(51))));
    assert!(!p.mark.contains_key("live"));
    lc.marked("dead", true);
    let p = lc.monitor(
        &nodes,
        &[lease("live", 56), lease("dead", 0)],
        &pods,
        at(56),
    );
    apply(&mut nodes, &p);
    assert!(p.mark.is_empty(), "marked only on the transition: {p:?}");
    assert_eq!(
        taint_keys(&nodes[1]),
        [
            "node.kubernetes.io/unreachable:NoSchedule",
            "node.kubernetes.io/unreachable:NoExecute"
        ]
    );
    // The kubelet comes back: Ready again, every taint removed.
    nodes[1] = Node {
        spec: nodes[1].spec.clone(),
        ..node("dead", "True", 60, json!([]))
    };
    let p = lc.monitor(
        &nodes,
        &[lease("live", 61), lease("dead", 60)],
        &pods,
        at(61),
    );
    apply(&mut nodes, &p);
    assert!(
        taint_keys(&nodes[1]).is_empty(),
        "{:?}",
        taint_keys(&nodes[1])
    );
}

#[test]
fn a_new_leader_gives_every_node_a_full_grace_period() {
    let mut lc = Lifecycle::new(flags());
    // Last renewed long ago, but this controller never saw it before.
    let nodes = vec![
        node("old", "True", -500, json!([])),
        node("b", "True", 0, json!([])),
    ];
    let leases = [lease("old", -500), lease("b", 0)];
    assert!(lc.monitor(&nodes, &leases, &[], at(0)).writes.is_empty());
    assert!(lc.monitor(&nodes, &leases, &[], at(50)).writes.is_empty());
    let p = lc.monitor(&nodes, &[lease("old", -500), lease("b", 51)], &[], at(51));
    assert!(
        matches!(p.writes.first(), Some(Action::NodeStatus(n)) if n.metadata.name.as_deref() == Some("old"))
    );
}

#[test]
fn a_kubelet_that_says_not_ready_gets_the_not_ready_taints() {
    let mut lc = Lifecycle::new(flags());
    let mut nodes = vec![
        node("sick", "False", 0, json!([])),
        node("b", "True", 0, json!([])),
    ];
    let leases = [lease("sick", 0), lease("b", 0)];
    let p = lc.monitor(&nodes, &leases, &[], at(0));
    apply(&mut nodes, &p);
    assert_eq!(
        taint_keys(&nodes[0]),
        [
            "node.kubernetes.io/not-ready:NoSchedule",
            "node.kubernetes.io/not-ready:NoExecute"
        ]
    );
    assert!(taint_keys(&nodes[1]).is_empty());
}

#[test]
fn with_every_node_down_no_noexecute_taint_is_kept() {
    // Master disruption mode: one node, silent.
    let mut lc = Lifecycle::new(flags());
    let mut nodes = vec![node("only", "True", 0, json!([]))];
    for t in [0, 51, 56, 61] {
        let p = lc.monitor(&nodes, &[lease("only", 0)], &[], at(t));
        apply(&mut nodes, &p);
    }
    assert_eq!(ready(&nodes[0], "Ready").0, "Unknown");
    assert_eq!(
        taint_keys(&nodes[0]),
        ["node.kubernetes.io/unreachable:NoSchedule"]
    );
}

#[test]
fn a_failed_mark_is_retried() {
    let mut lc = Lifecycle::new(flags());
    let mut nodes = vec![
        node("a", "True", 0, json!([])),
        node("b", "True", 0, json!([])),
    ];
    let pods = vec![pod("p", "a", "True")];
    lc.monitor(&nodes, &[lease("a", 0), lease("b", 0)], &pods, at(0));
    let p = lc.monitor(&nodes, &[lease("a", 0), lease("b", 51)], &pods, at(51));
    apply(&mut nodes, &p);
    assert!(p.mark.contains_key("a"));
    lc.marked("a", false);
    let p = lc.monitor(&nodes, &[lease("a", 0), lease("b", 56)], &pods, at(56));
    assert_eq!(p.mark.get("a").map(Vec::len), Some(1), "{p:?}");
}

#[test]
fn other_taints_are_kept_and_unschedulable_follows_the_spec() {
    let mut n = node(
        "n",
        "True",
        0,
        json!([{"key": "dedicated", "effect": "NoSchedule"}]),
    );
    n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
    let t = reconcile_taints(&n, Some(None), at(0)).unwrap_or_default();
    let keys: Vec<String> = t
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    assert_eq!(
        keys,
        [
            "dedicated:NoSchedule",
            "node.kubernetes.io/unschedulable:NoSchedule"
        ]
    );
    assert_eq!(
        t.get(1).and_then(|t| t.time_added.as_ref()).map(|t| t.0),
        Some(at(0))
    );
    assert_eq!(zone_state(&[false, false, false, true]), Zone::Partial);
    assert_eq!(zone_state(&[false, true, true]), Zone::Normal);
    assert_eq!(zone_state(&[false]), Zone::Full);
}
