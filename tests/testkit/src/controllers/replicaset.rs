//! The ReplicaSet controller: keep `spec.replicas` active pods. Pure: [`plan`] maps one
//! ReplicaSet and the pods to writes.
//!
//! *Expected flow.* Count the active pods it controls (ownerReference with
//! `controller: true` and its uid; not Succeeded/Failed, not being deleted). Too few:
//! create the difference from the template, without `nodeName` (the scheduler binds
//! them). Too many: delete the surplus in `deletion_rank` order (unscheduled first, then
//! pending, then not ready, then the youngest). Then write the status if it changed.
//!
//! *Guarantees.* Because each cycle re-lists from the api-server (which reads etcd), a
//! pod created in one cycle is counted in the next: no expectations bookkeeping is
//! needed, and a lost write is simply redone.
//!
//! *Caveats / not done.* No adoption of orphans matching the selector, no release of
//! pods whose labels stop matching, no `minReadySeconds` (available = ready), finished
//! pods are left in place (the real pod GC removes them only past a large threshold),
//! and no burst limit on creations.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::pods;
use super::world::{self, Action, Owner};

/// How many pods to add (positive) or remove (negative).
#[must_use]
pub fn diff(desired: i32, active: usize) -> i64 {
    i64::from(desired.max(0)) - i64::try_from(active).unwrap_or(i64::MAX)
}

/// The writes for one ReplicaSet.
#[must_use]
pub fn plan(rs: &ReplicaSet, all_pods: &[Pod]) -> Vec<Action> {
    let spec = rs.spec.clone().unwrap_or_default();
    let uid = rs.metadata.uid.as_deref();
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let mut active: Vec<&Pod> = all_pods
        .iter()
        .filter(|p| pods::controlled_by(&p.metadata, uid) && pods::is_active(p))
        .collect();
    let desired = spec.replicas.unwrap_or(1);
    let mut actions = Vec::new();
    let d = diff(desired, active.len());
    if d > 0 {
        let template = spec.template.clone().unwrap_or_default();
        let owner = pods::owner("ReplicaSet", &rs.metadata);
        for _ in 0..d {
            let pod = pods::from_template(&template, &ns, &name, owner.clone());
            actions.push(Action::CreatePod(Box::new(pod)));
        }
    } else if d < 0 {
        active.sort_by_key(|p| pods::deletion_rank(p));
        let surplus = usize::try_from(-d).unwrap_or(0);
        for p in active.iter().take(surplus) {
            actions.push(Action::DeletePod {
                namespace: ns.clone(),
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                why: "surplus",
            });
        }
    }
    let ready = active.iter().filter(|p| pods::is_ready(p)).count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let old = rs.status.clone().unwrap_or_default();
    let st = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(active.len())),
        ready_replicas: Some(count(ready)),
        available_replicas: Some(count(ready)),
        observed_generation: rs.metadata.generation,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if world::status_changed(&old, &st) {
        actions.push(Action::Status {
            owner: Owner::ReplicaSet,
            namespace: ns,
            name,
            status: serde_json::to_value(&st).unwrap_or_default(),
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn rs(replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "web"}]}}}
        }))
        .unwrap_or_default()
    }

    fn pod(name: &str, owner: &str, node: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "web-abc", "uid": owner, "controller": true}]},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase}
        }))
        .unwrap_or_default()
    }

    fn summary(a: &[Action]) -> (usize, Vec<String>, Value) {
        let mut creates = 0;
        let mut deletes = Vec::new();
        let mut status = Value::Null;
        for x in a {
            match x {
                Action::CreatePod(_) => creates += 1,
                Action::DeletePod { name, .. } => deletes.push(name.clone()),
                Action::Status { status: s, .. } => status = s.clone(),
                _ => {}
            }
        }
        (creates, deletes, status)
    }

    #[test]
    fn diff_decisions() {
        assert_eq!(diff(3, 1), 2);
        assert_eq!(diff(1, 3), -2);
        assert_eq!(diff(-1, 0), 0);
        assert_eq!(diff(2, 2), 0);
    }

    #[test]
    fn creates_missing_pods_without_node_name_and_ignores_others() {
        let pods = [
            pod("mine", "rs-uid", "n1", "Running"),
            pod("done", "rs-uid", "n1", "Succeeded"),
            pod("theirs", "other", "n1", "Running"),
        ];
        let a = plan(&rs(3), &pods);
        let (creates, deletes, status) = summary(&a);
        assert_eq!((creates, deletes.len()), (2, 0));
        assert_eq!(status["replicas"], 1);
        assert_eq!(status["observedGeneration"], 2);
        let Some(Action::CreatePod(p)) = a.first() else {
            panic!("expected a create: {a:?}");
        };
        assert_eq!(pods::node_name(p), "");
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
    }

    #[test]
    fn deletes_unscheduled_surplus_first() {
        let pods = [
            pod("running", "rs-uid", "n1", "Running"),
            pod("pending", "rs-uid", "", "Pending"),
        ];
        let (creates, deletes, _) = summary(&plan(&rs(1), &pods));
        assert_eq!((creates, deletes), (0, vec!["pending".to_string()]));
    }
}
