use super::*;

/// A Ready pod on `node` whose status names each `(container, containerID)` running.
fn pod(uid: &str, node: &str, containers: &[(&str, &str)]) -> Pod {
    let statuses: Vec<serde_json::Value> = containers
        .iter()
        .map(|(name, id)| {
            serde_json::json!({
                "name": name, "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "containerID": id,
                "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("p-{uid}"), "namespace": "kube-system", "uid": uid},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "containerStatuses": statuses,
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn runs(id: &str, uid: &str, state: ContainerState) -> ContainerView {
    ContainerView {
        id: id.into(),
        sandbox_id: "s".into(),
        name: "c".into(),
        namespace: "kube-system".into(),
        pod: "p".into(),
        pod_uid: uid.into(),
        state,
    }
}

const RUNNING: ContainerState = ContainerState::ContainerRunning;

fn uids(pods: &[Pod], runtime: &[ContainerView]) -> Vec<String> {
    confirmed(pods, "master-1", runtime).into_iter().collect()
}

#[test]
fn a_status_naming_the_containers_running_now_is_vouched_for() {
    let p = pod(
        "u1",
        "master-1",
        &[("a", "containerd://c1"), ("b", "containerd://c2")],
    );
    let rt = [runs("c1", "u1", RUNNING), runs("c2", "u1", RUNNING)];
    assert_eq!(uids(&[p], &rt), ["u1"]);
}

#[test]
fn a_status_from_before_a_reboot_names_containers_that_no_longer_run() {
    // After a reboot the runtime runs new containers; the old ones are exited or gone.
    let p = pod("u1", "master-1", &[("a", "containerd://old")]);
    assert!(uids(std::slice::from_ref(&p), &[runs("new", "u1", RUNNING)]).is_empty());
    let exited = ContainerState::ContainerExited;
    assert!(uids(std::slice::from_ref(&p), &[runs("old", "u1", exited)]).is_empty());
    assert!(uids(&[p], &[]).is_empty());
}

#[test]
fn every_container_must_be_vouched_for() {
    let p = pod(
        "u1",
        "master-1",
        &[("a", "containerd://c1"), ("b", "containerd://c2")],
    );
    assert!(uids(&[p], &[runs("c1", "u1", RUNNING)]).is_empty());
}

#[test]
fn the_runtime_must_run_it_for_the_same_pod() {
    let p = pod("u1", "master-1", &[("a", "containerd://c1")]);
    assert!(uids(std::slice::from_ref(&p), &[runs("c1", "u2", RUNNING)]).is_empty());
    assert!(uids(&[p], &[runs("c1", "", RUNNING)]).is_empty());
}

#[test]
fn only_pods_on_this_node_can_be_vouched_for() {
    let p = pod("u1", "master-2", &[("a", "containerd://c1")]);
    assert!(uids(&[p], &[runs("c1", "u1", RUNNING)]).is_empty());
}

#[test]
fn a_status_without_ids_or_running_containers_is_not_vouched_for() {
    let rt = [runs("c1", "u1", RUNNING)];
    assert!(uids(&[pod("u1", "master-1", &[])], &rt).is_empty());
    assert!(uids(&[pod("u1", "master-1", &[("a", "c1")])], &rt).is_empty());
    assert!(uids(&[pod("u1", "master-1", &[("a", "containerd://")])], &rt).is_empty());
    let mut waiting = pod("u1", "master-1", &[("a", "containerd://c1")]);
    if let Some(s) = waiting
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
    {
        s[0].state = Some(Default::default());
    }
    assert!(uids(&[waiting], &rt).is_empty());
    let mut no_uid = pod("u1", "master-1", &[("a", "containerd://c1")]);
    no_uid.metadata.uid = None;
    assert!(uids(&[no_uid], &rt).is_empty());
}
