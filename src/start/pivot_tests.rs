use super::*;
use observe::{Rules, World};
use serde_json::json;

const REMOVED: &str = "2026-01-01T10:00:00Z";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn apiserver() -> Required {
    Required::parse("kube-system/kube-apiserver").unwrap()
}

/// A kube-apiserver DaemonSet pod on `node`, Ready since `ready_at`, created at `created`.
fn pod(node: &str, created: &str, ready_at: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("kube-apiserver-{node}"), "namespace": "kube-system",
                     "uid": format!("uid-{node}"), "creationTimestamp": created,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": "kube-apiserver", "uid": "o", "controller": true}]},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}
    }))
    .unwrap()
}

/// m1 and m2, both with a Lease renewed at `renew`.
fn world(pods: Vec<k8s_openapi::api::core::v1::Pod>, renew: &str) -> World {
    let node = |n: &str| serde_json::from_value(json!({"metadata": {"name": n}})).unwrap();
    let lease = |n: &str| {
        serde_json::from_value(json!({
            "metadata": {"name": n, "namespace": "kube-node-lease"},
            "spec": {"renewTime": renew}
        }))
        .unwrap()
    };
    World {
        pods,
        nodes: vec![node("m1"), node("m2")],
        leases: vec![lease("m1"), lease("m2")],
        replicasets: vec![],
        confirmed: Default::default(),
    }
}

fn here(w: &World, node: &str, now: &str, since: &mut BTreeMap<String, Timestamp>) -> Stage {
    let rules = Rules::default();
    let live = observe::live_nodes(w, ts(now), rules.node_grace);
    assess_here(
        &apiserver(),
        w,
        &live,
        node,
        ts(REMOVED),
        ts(now),
        &rules,
        since,
    )
    .stage
}

/// Finding 6 of issue 10: master-2's api-server, freshly Ready, must not prove that
/// master-1's own api-server took over from the bootstrap pod removed on master-1.
#[test]
fn another_masters_ready_pod_does_not_pivot_this_node() {
    let w = world(
        vec![pod("m2", "2026-01-01T10:00:05Z", "2026-01-01T10:00:06Z")],
        "2026-01-01T10:00:10Z",
    );
    let mut since = BTreeMap::new();
    assert_eq!(
        here(&w, "m1", "2026-01-01T10:00:10Z", &mut since),
        Stage::Missing
    );
    assert_eq!(
        here(&w, "m2", "2026-01-01T10:00:10Z", &mut BTreeMap::new()),
        Stage::Ready
    );
}

/// A pod on this node that was Ready before the removal is believed only once it has
/// been seen Ready for the settle time after the removal and its kubelet renewed its
/// Lease since.
#[test]
fn a_ready_status_from_before_the_removal_must_settle_after_it() {
    let before = pod("m1", "2026-01-01T09:00:00Z", "2026-01-01T09:00:01Z");
    let mut since = BTreeMap::new();
    let w = world(vec![before.clone()], "2026-01-01T10:00:01Z");
    assert_eq!(
        here(&w, "m1", "2026-01-01T10:00:01Z", &mut since),
        Stage::Unconfirmed
    );
    // A runtime's word (which `start` never gathers) predates the removal: no shortcut.
    let mut vouched = w.clone();
    vouched.confirmed.insert("uid-m1".into());
    assert_eq!(
        here(&vouched, "m1", "2026-01-01T10:00:02Z", &mut since),
        Stage::Unconfirmed
    );
    let w = world(vec![before], "2026-01-01T10:00:12Z");
    assert_eq!(
        here(&w, "m1", "2026-01-01T10:00:12Z", &mut since),
        Stage::Ready
    );
}

#[test]
fn a_node_that_is_not_live_says_so() {
    let w = world(vec![], "2026-01-01T10:00:00Z");
    let rules = Rules::default();
    let live = observe::live_nodes(&w, ts("2026-01-01T10:00:01Z"), rules.node_grace);
    let v = assess_here(
        &apiserver(),
        &w,
        &live,
        "master-9",
        ts(REMOVED),
        ts("2026-01-01T10:00:01Z"),
        &rules,
        &mut BTreeMap::new(),
    );
    assert!(
        v.detail.contains("\"master-9\" is not a live node"),
        "{}",
        v.detail
    );
}

/// A kube-controller-manager Deployment pod on `node` (through ReplicaSet kcm-1).
fn deployment_pod(node: &str, created: &str, ready_at: &str) -> k8s_openapi::api::core::v1::Pod {
    let mut p = pod(node, created, ready_at);
    p.metadata.name = Some(format!("kcm-{node}"));
    let refs = p.metadata.owner_references.as_mut().unwrap();
    refs[0].kind = "ReplicaSet".into();
    refs[0].name = "kcm-1".into();
    p
}

fn kcm_world(pods: Vec<k8s_openapi::api::core::v1::Pod>, renew: &str) -> World {
    let mut w = world(pods, renew);
    w.replicasets = vec![
        serde_json::from_value(json!({
            "metadata": {"name": "kcm-1", "namespace": "kube-system",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "kube-controller-manager", "uid": "d",
                                              "controller": true}]}
        }))
        .unwrap(),
    ];
    w
}

/// CI run of stop 19: with three labelled masters the scheduler placed both
/// controller-manager replicas on master-2 and master-3, and the pivot on master-1
/// waited for a pod that would never come there. A Deployment is one service for the
/// cluster: a replica Ready on another live node pivots it.
#[test]
fn a_deployment_replica_on_another_node_pivots_this_one() {
    let req = Required::parse("kube-system/kube-controller-manager").unwrap();
    let w = kcm_world(
        vec![deployment_pod(
            "m2",
            "2026-01-01T10:00:05Z",
            "2026-01-01T10:00:06Z",
        )],
        "2026-01-01T10:00:10Z",
    );
    let rules = Rules::default();
    let now = ts("2026-01-01T10:00:10Z");
    let live = observe::live_nodes(&w, now, rules.node_grace);
    let v = assess_here(
        &req,
        &w,
        &live,
        "m1",
        ts(REMOVED),
        now,
        &rules,
        &mut BTreeMap::new(),
    );
    assert_eq!(v.stage, Stage::Ready, "{}", v.detail);
    // Not with no replica at all: the wait names the Deployment on a live node.
    let w = kcm_world(vec![], "2026-01-01T10:00:10Z");
    let v = assess_here(
        &req,
        &w,
        &live,
        "m1",
        ts(REMOVED),
        now,
        &rules,
        &mut BTreeMap::new(),
    );
    assert_eq!(v.stage, Stage::Missing);
    assert!(v.detail.contains("on a live node"), "{}", v.detail);
}

/// A replica on another node still must have been confirmed since the removal: one Ready
/// from before settles first.
#[test]
fn a_deployment_replica_ready_before_the_removal_settles_first() {
    let req = Required::parse("kube-system/kube-controller-manager").unwrap();
    let before = deployment_pod("m2", "2026-01-01T09:00:00Z", "2026-01-01T09:00:01Z");
    let rules = Rules::default();
    let mut since = BTreeMap::new();
    let w = kcm_world(vec![before.clone()], "2026-01-01T10:00:01Z");
    let now = ts("2026-01-01T10:00:01Z");
    let live = observe::live_nodes(&w, now, rules.node_grace);
    let v = assess_here(&req, &w, &live, "m1", ts(REMOVED), now, &rules, &mut since);
    assert_eq!(v.stage, Stage::Unconfirmed, "{}", v.detail);
    let w = kcm_world(vec![before], "2026-01-01T10:00:12Z");
    let now = ts("2026-01-01T10:00:12Z");
    let v = assess_here(&req, &w, &live, "m1", ts(REMOVED), now, &rules, &mut since);
    assert_eq!(v.stage, Stage::Ready, "{}", v.detail);
}
