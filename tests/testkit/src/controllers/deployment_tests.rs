//! Deployment plan tests, without servers.

use super::*;
use serde_json::{Value, json};

fn deploy(replicas: i32, image: &str, strategy: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 4},
        "spec": {"replicas": replicas, "strategy": strategy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .unwrap_or_default()
}

fn now() -> Time {
    Time(jiff::Timestamp::UNIX_EPOCH)
}

/// The deployment's current ReplicaSet with `spec`/`available` replicas.
fn rs_for(d: &Deployment, spec: i32, available: i32, created: &str) -> ReplicaSet {
    let h = hash::template_hash(&d.spec.clone().unwrap_or_default().template);
    let mut rs = new_replica_set(d, &h, spec, 1);
    rs.metadata.uid = Some(format!("uid-{h}"));
    rs.metadata.creation_timestamp = serde_json::from_value(json!(created)).ok();
    rs.status = serde_json::from_value(json!({"replicas": spec, "readyReplicas": available,
        "availableReplicas": available}))
    .ok();
    rs
}

fn scales(a: &[Action]) -> Vec<(String, i32)> {
    a.iter()
        .filter_map(|a| match a {
            Action::ScaleReplicaSet { name, replicas, .. } => Some((name.clone(), *replicas)),
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

#[test]
fn creates_the_named_replica_set_with_the_hash_label() {
    let d = deploy(3, "web:1", json!({}));
    let a = plan(&d, &[], &now());
    let Some(Action::CreateReplicaSet(rs)) = a.first() else {
        panic!("expected a ReplicaSet: {a:?}");
    };
    let h = hash::template_hash(&d.spec.clone().unwrap_or_default().template);
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{h}").as_str())
    );
    let spec = rs.spec.clone().unwrap_or_default();
    assert_eq!(spec.replicas, Some(3));
    let sel = spec.selector.match_labels.unwrap_or_default();
    assert_eq!(sel.get(POD_TEMPLATE_HASH), Some(&h));
    let tl = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(tl.get(POD_TEMPLATE_HASH), Some(&h));
    assert_eq!(tl.get("app").map(String::as_str), Some("web"));
    assert_eq!(status(&a)["observedGeneration"], 4);
    assert_eq!(status(&a)["conditions"][0]["status"], "False");
}

#[test]
fn rolling_update_scales_old_down_as_new_becomes_available() {
    let old_d = deploy(3, "web:1", json!({}));
    let d = deploy(3, "web:2", json!({}));
    let old = rs_for(&old_d, 3, 3, "2024-01-01T00:00:00Z");
    let old_name = old.metadata.name.clone().unwrap_or_default();
    let a = plan(&d, std::slice::from_ref(&old), &now());
    assert!(
        matches!(a.first(), Some(Action::CreateReplicaSet(_))),
        "{a:?}"
    );
    assert_eq!(scales(&a), []);
    let new = rs_for(&d, 3, 2, "2024-01-02T00:00:00Z");
    let a = plan(&d, &[old, new], &now());
    assert_eq!(scales(&a), [(old_name, 1)]);
}

#[test]
fn recreate_waits_for_old_pods_to_go() {
    let old_d = deploy(2, "web:1", json!({"type": "Recreate"}));
    let d = deploy(2, "web:2", json!({"type": "Recreate"}));
    let old = rs_for(&old_d, 2, 2, "2024-01-01T00:00:00Z");
    let old_name = old.metadata.name.clone().unwrap_or_default();
    let a = plan(&d, std::slice::from_ref(&old), &now());
    assert_eq!(scales(&a), [(old_name, 0)]);
    let Some(Action::CreateReplicaSet(rs)) =
        a.iter().find(|a| matches!(a, Action::CreateReplicaSet(_)))
    else {
        panic!("expected a ReplicaSet: {a:?}");
    };
    assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(0));
    let gone = rs_for(&old_d, 0, 0, "2024-01-01T00:00:00Z");
    let new = rs_for(&d, 0, 0, "2024-01-02T00:00:00Z");
    let new_name = new.metadata.name.clone().unwrap_or_default();
    assert_eq!(scales(&plan(&d, &[gone, new], &now())), [(new_name, 2)]);
}

#[test]
fn complete_deployment_is_available_and_then_quiet() {
    let mut d = deploy(2, "web:1", json!({}));
    let rs = rs_for(&d, 2, 2, "2024-01-01T00:00:00Z");
    let a = plan(&d, std::slice::from_ref(&rs), &now());
    let st = status(&a);
    assert_eq!(st["availableReplicas"], 2);
    assert_eq!(st["updatedReplicas"], 2);
    assert_eq!(st["conditions"][0]["reason"], "MinimumReplicasAvailable");
    assert_eq!(st["conditions"][1]["reason"], "NewReplicaSetAvailable");
    d.status = serde_json::from_value(st).ok();
    let later = Time(jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(60));
    assert_eq!(plan(&d, &[rs], &later), []);
}

#[test]
fn max_unavailable_defaults_to_a_quarter_rounded_down() {
    assert_eq!(max_unavailable(&deploy(4, "x", json!({})), 4), 1);
    assert_eq!(max_unavailable(&deploy(3, "x", json!({})), 3), 0);
    assert_eq!(
        max_unavailable(&deploy(3, "x", json!({"type": "Recreate"})), 3),
        0
    );
    let n = deploy(3, "x", json!({"rollingUpdate": {"maxUnavailable": 2}}));
    assert_eq!(max_unavailable(&n, 3), 2);
}
