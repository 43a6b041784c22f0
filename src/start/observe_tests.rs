use super::*;
use crate::start::test_objects::{lease, node, req, ts};
use serde_json::json;

const SINCE: &str = "2026-01-01T10:00:00Z";

fn rs(name: &str, deploy: &str) -> ReplicaSet {
    serde_json::from_value(json!({"metadata": {
        "name": name, "namespace": "kube-system",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy,
                             "uid": "d", "controller": true}]
    }}))
    .unwrap()
}

/// A pod owned by `kind/owner` on `node`; `ready` = Some(lastTransitionTime).
fn pod(name: &str, kind: &str, owner: &str, node: &str, created: &str, ready: Option<&str>) -> Pod {
    let conditions = match ready {
        Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
        None => json!([{"type": "Ready", "status": "False"}]),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-system", "uid": format!("uid-{name}"),
                     "creationTimestamp": created,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                                          "uid": "o", "controller": true}]},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "conditions": conditions,
                   "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready.is_some(),
                                          "restartCount": 0,
                                          "state": if ready.is_some() { json!({"running": {}}) }
                                                   else { json!({"waiting": {"reason": "HostPortConflict"}}) }}]}
    }))
    .unwrap()
}

fn world(pods: Vec<Pod>) -> World {
    World {
        pods,
        nodes: vec![node("m1"), node("m2")],
        leases: vec![
            lease("m1", "2026-01-01T10:00:30Z"),
            lease("m2", "2026-01-01T09:00:00Z"),
        ],
        replicasets: vec![rs("kube-scheduler-abc", "kube-scheduler")],
        confirmed: Default::default(),
    }
}

fn verdict(
    w: &World,
    r: &Required,
    now: &str,
    ready_since: &BTreeMap<String, Timestamp>,
) -> Verdict {
    let live = live_nodes(w, ts(now), Rules::default().node_grace);
    assess(
        r,
        w,
        &live,
        ts(SINCE),
        ts(now),
        &Rules::default(),
        ready_since,
    )
}

#[test]
fn required_parses_namespace_and_name() {
    assert_eq!(
        req("kube-apiserver").to_string(),
        "kube-system/kube-apiserver"
    );
    for bad in ["kube-apiserver", "/x", "ns/", "a/b/c"] {
        assert!(Required::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn only_nodes_with_a_recent_lease_are_live() {
    let w = world(vec![]);
    let live = live_nodes(
        &w,
        ts("2026-01-01T10:00:40Z"),
        SignedDuration::from_secs(40),
    );
    assert_eq!(live.into_iter().collect::<Vec<_>>(), ["m1"]);
}

#[test]
fn pods_on_dead_nodes_do_not_count() {
    let p = pod(
        "kube-apiserver-x",
        "DaemonSet",
        "kube-apiserver",
        "m2",
        SINCE,
        Some(SINCE),
    );
    let v = verdict(
        &world(vec![p]),
        &req("kube-apiserver"),
        "2026-01-01T10:00:40Z",
        &BTreeMap::new(),
    );
    assert_eq!(v.stage, Stage::Missing);
}

#[test]
fn ownership_goes_through_the_replicaset_to_the_deployment() {
    let now = "2026-01-01T10:00:40Z";
    let good = pod(
        "kube-scheduler-abc-1",
        "ReplicaSet",
        "kube-scheduler-abc",
        "m1",
        now,
        Some(now),
    );
    let w = world(vec![good]);
    assert_eq!(
        verdict(&w, &req("kube-scheduler"), now, &BTreeMap::new()).stage,
        Stage::Ready
    );
    // A pod whose name starts like the component but is owned by something else.
    let imposter = pod(
        "kube-scheduler-zzz",
        "ReplicaSet",
        "other-rs",
        "m1",
        now,
        Some(now),
    );
    let w = world(vec![imposter]);
    assert_eq!(
        verdict(&w, &req("kube-scheduler"), now, &BTreeMap::new()).stage,
        Stage::Missing
    );
    // A bootstrap mirror pod has no controller.
    let mut mirror = pod(
        "bootstrap-kube-scheduler-m1",
        "Node",
        "m1",
        "m1",
        now,
        Some(now),
    );
    mirror.metadata.owner_references.as_mut().unwrap()[0].controller = Some(false);
    let w = world(vec![mirror]);
    assert_eq!(
        verdict(&w, &req("kube-scheduler"), now, &BTreeMap::new()).stage,
        Stage::Missing
    );
}

/// A kube-apiserver pod on m1, Ready since 09:00, an hour before the tests' `now`.
fn stale_apiserver() -> World {
    let old = "2026-01-01T09:00:00Z";
    let p = pod(
        "kube-apiserver-x",
        "DaemonSet",
        "kube-apiserver",
        "m1",
        old,
        Some(old),
    );
    world(vec![p])
}

/// What `ensure`'s witness vouches for (the runtime runs the very containers the
/// status names) is current at once; nothing else about the rule changes.
#[test]
fn a_ready_status_the_runtime_vouches_for_is_trusted_at_once() {
    let mut w = stale_apiserver();
    let r = req("kube-apiserver");
    let now = "2026-01-01T10:00:31Z";
    assert_eq!(
        verdict(&w, &r, now, &BTreeMap::new()).stage,
        Stage::Unconfirmed
    );
    w.confirmed.insert("uid-kube-apiserver-x".into());
    assert_eq!(verdict(&w, &r, now, &BTreeMap::new()).stage, Stage::Ready);
    // Vouched for, but on a node whose kubelet stopped reporting: not counted.
    w.leases[0] = lease("m1", "2026-01-01T09:00:00Z");
    assert_eq!(verdict(&w, &r, now, &BTreeMap::new()).stage, Stage::Missing);
}

#[test]
fn a_ready_status_from_before_start_is_not_trusted_until_it_settles() {
    // bootkube #601: Running/Ready left over in etcd from before the disaster.
    let mut w = stale_apiserver();
    let r = req("kube-apiserver");
    let mut seen = BTreeMap::new();
    let live = live_nodes(&w, ts("2026-01-01T10:00:31Z"), Rules::default().node_grace);
    track_ready(&mut seen, &w, &live, ts("2026-01-01T10:00:31Z"));
    assert_eq!(
        verdict(&w, &r, "2026-01-01T10:00:35Z", &seen).stage,
        Stage::Unconfirmed
    );
    // Settled, but the kubelet has not reported since: it may have just died.
    assert_eq!(
        verdict(&w, &r, "2026-01-01T10:00:41Z", &seen).stage,
        Stage::Unconfirmed
    );
    w.leases[0] = lease("m1", "2026-01-01T10:00:36Z");
    assert_eq!(
        verdict(&w, &r, "2026-01-01T10:00:41Z", &seen).stage,
        Stage::Ready
    );
    // Seen not Ready once: the run starts over.
    let mut not_ready = w.clone();
    not_ready.pods[0] = pod(
        "kube-apiserver-x",
        "DaemonSet",
        "kube-apiserver",
        "m1",
        "2026-01-01T09:00:00Z",
        None,
    );
    track_ready(&mut seen, &not_ready, &live, ts("2026-01-01T10:00:42Z"));
    assert!(seen.is_empty());
}

#[test]
fn a_status_written_after_start_is_trusted_at_once() {
    let old = "2026-01-01T09:00:00Z";
    let p = pod(
        "kube-apiserver-x",
        "DaemonSet",
        "kube-apiserver",
        "m1",
        old,
        Some("2026-01-01T10:00:05Z"),
    );
    let v = verdict(
        &world(vec![p]),
        &req("kube-apiserver"),
        "2026-01-01T10:00:06Z",
        &BTreeMap::new(),
    );
    assert_eq!(v.stage, Stage::Ready);
}

#[test]
fn a_waiting_pod_reports_why() {
    let p = pod(
        "kube-apiserver-x",
        "DaemonSet",
        "kube-apiserver",
        "m1",
        SINCE,
        None,
    );
    let v = verdict(
        &world(vec![p]),
        &req("kube-apiserver"),
        "2026-01-01T10:00:06Z",
        &BTreeMap::new(),
    );
    assert_eq!(v.stage, Stage::Scheduled);
    assert!(v.detail.contains("HostPortConflict"), "{}", v.detail);
}

/// The real kubelet rejects a pod whose host port another admitted pod holds: phase
/// Failed, reason NodePorts. Such a pod never runs; it must not count as placed.
#[test]
fn a_pod_the_kubelet_rejected_is_not_scheduled() {
    let mut p = pod(
        "kube-apiserver-x",
        "DaemonSet",
        "kube-apiserver",
        "m1",
        "2026-01-01T10:00:05Z",
        None,
    );
    let st = p.status.as_mut().unwrap();
    st.phase = Some("Failed".into());
    st.reason = Some("NodePorts".into());
    st.message = Some(
        "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
            .into(),
    );
    let w = world(vec![p]);
    let v = verdict(
        &w,
        &req("kube-apiserver"),
        "2026-01-01T10:00:40Z",
        &BTreeMap::new(),
    );
    assert_eq!(v.stage, Stage::Missing, "{v:?}");
    assert!(v.detail.contains("Failed: NodePorts"), "{}", v.detail);
}
