//! What the controllers ask of a pod (owned by whom, active, ready) and how they make
//! one from a template. Pure; the rules are those of `pkg/controller/controller_utils.go`.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// Whether `meta`'s controller is the object with `uid`.
pub fn controlled_by(meta: &ObjectMeta, uid: Option<&str>) -> bool {
    uid.is_some_and(|u| controller_uid(meta) == Some(u))
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Succeeded or Failed: the pod will not run again.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// `IsPodActive`: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Condition `Ready=True` (also what "available" means here: `minReadySeconds` is not
/// honoured).
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// A controller ownerReference to an `apps/v1` object, as the real controllers set it.
pub fn owner(kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod from `template`: its labels and annotations, `generateName: <prefix>-`, the
/// controller reference, and the template's spec.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    prefix: &str,
    owner: OwnerReference,
) -> Pod {
    let t = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: Some(namespace.into()),
            labels: t.labels,
            annotations: t.annotations,
            finalizers: t.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The order in which surplus pods go first (`ActivePods.Less` in
/// `controller_utils.go`): unscheduled, then pending, then not ready, then the youngest.
/// Smaller sorts first.
pub fn deletion_rank(pod: &Pod) -> (bool, u8, bool, std::cmp::Reverse<String>) {
    let phase_rank = match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    (
        !node_name(pod).is_empty(),
        phase_rank,
        is_ready(pod),
        std::cmp::Reverse(created),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn surplus_pods_go_unscheduled_then_pending_then_unready_then_youngest() {
        let ready = json!([{"type": "Ready", "status": "True"}]);
        let mut pods = [
            (
                "old-ready",
                pod(
                    json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Running", "conditions": ready}}),
                ),
            ),
            (
                "young-ready",
                pod(
                    json!({"metadata": {"creationTimestamp": "2024-01-02T00:00:00Z"},
                "spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Running", "conditions": ready}}),
                ),
            ),
            (
                "unready",
                pod(json!({"spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Running"}})),
            ),
            (
                "pending",
                pod(json!({"spec": {"containers": [], "nodeName": "n"},
                "status": {"phase": "Pending"}})),
            ),
            (
                "unscheduled",
                pod(json!({"spec": {"containers": []}, "status": {"phase": "Pending"}})),
            ),
        ];
        pods.sort_by_key(|(_, p)| deletion_rank(p));
        let order: Vec<&str> = pods.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "unready",
                "young-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn activity_and_ownership() {
        let p = pod(json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "u1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "u2", "controller": true}]},
            "status": {"phase": "Failed"}}));
        assert_eq!(controller_uid(&p.metadata), Some("u2"));
        assert!(controlled_by(&p.metadata, Some("u2")));
        assert!(!controlled_by(&p.metadata, Some("u1")));
        assert!(!is_active(&p));
        let deleting = pod(json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}}));
        assert!(!is_active(&deleting));
        assert!(is_active(&pod(json!({"status": {"phase": "Running"}}))));
    }
}
