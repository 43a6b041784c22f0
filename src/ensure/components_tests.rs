use super::*;
use crate::ensure::clock;
use crate::start::test_objects::{lease, node, req, ts};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

/// The api-server's time in these tests.
const NOW: &str = "2026-12-02T13:00:00Z";

/// A pod of the DaemonSet `owner` on `node` (unbound when empty), Ready or waiting
/// for `waiting`.
fn pod(name: &str, owner: &str, node: &str, waiting: Option<&str>) -> Pod {
    let ready = waiting.is_none();
    let state = match waiting {
        Some(reason) => json!({"waiting": {"reason": reason}}),
        None => json!({"running": {"startedAt": NOW}}),
    };
    let mut spec = json!({"containers": []});
    if !node.is_empty() {
        spec["nodeName"] = json!(node);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-system", "uid": format!("uid-{name}"),
                     "creationTimestamp": NOW,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": owner,
                                          "uid": "o", "controller": true}]},
        "spec": spec,
        "status": {"phase": if ready { "Running" } else { "Pending" },
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                   "lastTransitionTime": NOW}],
                   "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready,
                                          "restartCount": 0, "state": state}]}
    }))
    .unwrap()
}

/// m1 renewed its lease 10 s ago, m2 10 minutes ago (dead), both on the api-server's clock.
fn world(pods: Vec<Pod>) -> World {
    World {
        pods,
        nodes: vec![node("m1"), node("m2")],
        leases: vec![
            lease("m1", "2026-12-02T12:59:50.000000Z"),
            lease("m2", "2026-12-02T12:50:00.000000Z"),
        ],
        replicasets: vec![],
        confirmed: Default::default(),
    }
}

fn declared(names: &[&str]) -> BTreeSet<Required> {
    names.iter().map(|n| req(n)).collect()
}

fn run(w: &World, required: &[&str], decl: &[&str], now: Timestamp) -> Assessment {
    let required: Vec<Required> = required.iter().map(|n| req(n)).collect();
    let mut tracker = ReadyTracker::default();
    assess(
        &required,
        w,
        &declared(decl),
        now,
        &Rules::default(),
        &mut tracker,
    )
}

#[test]
fn a_pod_on_a_live_node_that_is_not_ready_is_unready_not_gone() {
    let w = world(vec![
        pod("ckpt-a", "pod-checkpointer", "m1", Some("ImagePullBackOff")),
        pod("sched-a", "kube-scheduler", "m1", None),
    ]);
    let a = run(
        &w,
        &["pod-checkpointer", "kube-scheduler"],
        &["pod-checkpointer", "kube-scheduler"],
        ts(NOW),
    );
    assert!(a.gone.is_empty(), "{a:?}");
    assert_eq!(a.unready.len(), 1, "{a:?}");
    assert!(
        a.unready[0].starts_with("kube-system/pod-checkpointer: ckpt-a on m1: ImagePullBackOff"),
        "{a:?}"
    );
}

#[test]
fn nothing_running_on_a_live_node_is_gone_when_its_controller_exists() {
    // Its only pods: one on a dead node, one unbound (no scheduler to place it).
    let w = world(vec![
        pod("sched-old", "kube-scheduler", "m2", None),
        pod("sched-new", "kube-scheduler", "", Some("ContainerCreating")),
    ]);
    let a = run(&w, &["kube-scheduler"], &["kube-scheduler"], ts(NOW));
    assert_eq!(a.unready, Vec::<String>::new());
    assert_eq!(a.gone.len(), 1, "{a:?}");
    assert!(a.gone[0].starts_with("kube-system/kube-scheduler: no pod"));
}

#[test]
fn a_component_with_no_pod_and_no_controller_is_reported_not_recovered() {
    let w = world(vec![]);
    let a = run(&w, &["pod-checkpointer"], &[], ts(NOW));
    assert!(a.gone.is_empty(), "{a:?}");
    assert!(
        a.unready[0].contains("no DaemonSet or Deployment kube-system/pod-checkpointer"),
        "{a:?}"
    );
}

/// The api-server's `now` derived from this node's clock 5 minutes off either way
/// and the `Date` header: the live node stays live, the dead one stays dead.
#[test]
fn leases_are_judged_by_the_apiservers_clock_whatever_this_nodes_says() {
    let date = "Wed, 02 Dec 2026 13:00:00 GMT";
    for skew in [300i64, -300] {
        let local = ts(NOW)
            .checked_add(SignedDuration::from_secs(skew))
            .unwrap();
        let now = clock::server_now(local, Some(clock::offset(date, local).unwrap()));
        let w = world(vec![
            pod("sched-a", "kube-scheduler", "m1", None),
            pod("cm-old", "kube-controller-manager", "m2", None),
        ]);
        let a = run(
            &w,
            &["kube-scheduler", "kube-controller-manager"],
            &["kube-scheduler", "kube-controller-manager"],
            now,
        );
        assert!(a.unready.is_empty(), "skew {skew}: {a:?}");
        assert_eq!(a.gone.len(), 1, "skew {skew}: {a:?}");
        assert!(a.gone[0].starts_with("kube-system/kube-controller-manager"));
        // Judged by this node's clock instead, 5 minutes ahead: m1's lease would be dead and
        // the scheduler gone too (what issue 11 found).
        if skew > 0 {
            let a = run(&w, &["kube-scheduler"], &["kube-scheduler"], local);
            assert_eq!(a.gone.len(), 1, "{a:?}");
        }
    }
}

/// A pod of the DaemonSet `owner` on `node` that the kubelet rejected at admission, as
/// upstream's kubelet leaves it (pkg/kubelet/kubelet.go, `rejectPod`: phase Failed,
/// the predicate's reason, e.g. `NodePorts`).
fn rejected(name: &str, owner: &str, node: &str, reason: &str) -> Pod {
    let mut p = pod(name, owner, node, None);
    p.status = serde_json::from_value(json!({
        "phase": "Failed", "reason": reason,
        "message": "Pod was rejected: node didn't have free ports for the requested pod ports"
    }))
    .unwrap();
    p
}

/// A pod that is only Failed (rejected with NodePorts) on a live node is reported as
/// such: not Ready, and not gone either (a recovery would place the same pod on the
/// same held port).
#[test]
fn a_pod_that_is_only_failed_is_reported_not_ready_and_not_gone() {
    let w = world(vec![rejected(
        "ckpt-a",
        "pod-checkpointer",
        "m1",
        "NodePorts",
    )]);
    let a = run(&w, &["pod-checkpointer"], &["pod-checkpointer"], ts(NOW));
    assert!(a.gone.is_empty(), "{a:?}");
    assert_eq!(a.unready.len(), 1, "{a:?}");
    assert!(
        a.unready[0].starts_with("kube-system/pod-checkpointer: ckpt-a on m1 is Failed: NodePorts"),
        "{a:?}"
    );
    // Beside a Ready pod on a live node, the Failed one does not matter.
    let w = world(vec![
        rejected("ckpt-a", "pod-checkpointer", "m1", "NodePorts"),
        pod("ckpt-b", "pod-checkpointer", "m1", None),
    ]);
    let a = run(&w, &["pod-checkpointer"], &["pod-checkpointer"], ts(NOW));
    assert_eq!(a, Assessment::default());
    // Failed on a dead node only: nothing runs it on a live one, so it is gone.
    let w = world(vec![rejected(
        "ckpt-a",
        "pod-checkpointer",
        "m2",
        "NodePorts",
    )]);
    let a = run(&w, &["pod-checkpointer"], &["pod-checkpointer"], ts(NOW));
    assert!(a.unready.is_empty() && a.gone.len() == 1, "{a:?}");
}
