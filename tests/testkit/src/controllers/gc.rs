//! Garbage collection: pods bound to Nodes that no longer exist (the pod GC's
//! `gcOrphaned`), and pods and ReplicaSets whose `apps/v1` owners are all gone (the
//! garbage collector's background deletion; the fake api-server does not cascade).
//! Pure: the executor keeps the quarantine clock in [`Missing`].
//!
//! *Guarantees.* A node must be seen missing for [`QUARANTINE`] before its pods go, so a
//! kubelet that posts mirror pods just before registering its Node does not lose them.
//! An owner counts as gone only by uid, and only if it is absent from a list read after
//! its dependents (see `world.rs`).
//!
//! *Caveats / not done.* The real quarantine is 40 s; here it is shorter so tests stay
//! quick. No node lifecycle: pods on NotReady or unreachable nodes are neither evicted
//! nor marked, and no `NoExecute` taint manager runs. Terminated-pod thresholds,
//! foreground/orphan propagation, finalizers and owners of other kinds (for example the
//! Node owning a mirror pod) are not handled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::pods;
use super::world::{Action, World};

/// How long a node must be missing before its pods are deleted.
pub const QUARANTINE: Duration = Duration::from_secs(3);

/// Node name → when it was first seen missing.
pub type Missing = BTreeMap<String, Instant>;

/// Pods on nodes missing for longer than `quarantine`; updates `missing`.
#[must_use]
pub fn orphaned_pods(
    w: &World,
    missing: &mut Missing,
    now: Instant,
    quarantine: Duration,
) -> Vec<Action> {
    let nodes: BTreeSet<&str> = w
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in &w.pods {
        let node = pods::node_name(p);
        if node.is_empty() || nodes.contains(node) {
            continue;
        }
        seen.insert(node.to_string());
        let since = *missing.entry(node.to_string()).or_insert(now);
        if now.duration_since(since) >= quarantine {
            out.push(Action::DeletePod {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                why: "its node is gone",
            });
        }
    }
    missing.retain(|n, _| seen.contains(n));
    out
}

const OWNER_KINDS: &[&str] = &["ReplicaSet", "Deployment", "DaemonSet"];

/// Whether every ownerReference is an `apps/v1` object of a kind listed here whose uid
/// is not in `alive`. Objects without owners, or with an owner of another kind, stay.
fn abandoned(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    alive: &BTreeSet<&str>,
) -> bool {
    let refs = meta.owner_references.as_deref().unwrap_or(&[]);
    !refs.is_empty()
        && refs.iter().all(|r| {
            r.api_version == "apps/v1"
                && OWNER_KINDS.contains(&r.kind.as_str())
                && !alive.contains(r.uid.as_str())
        })
}

/// Pods and ReplicaSets whose owners are all gone.
#[must_use]
pub fn abandoned_dependents(w: &World) -> Vec<Action> {
    let uids = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.uid.clone();
    let owners: Vec<String> = w
        .replica_sets
        .iter()
        .filter_map(|o| uids(&o.metadata))
        .chain(w.deployments.iter().filter_map(|o| uids(&o.metadata)))
        .chain(w.daemon_sets.iter().filter_map(|o| uids(&o.metadata)))
        .collect();
    let alive: BTreeSet<&str> = owners.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for rs in w
        .replica_sets
        .iter()
        .filter(|rs| abandoned(&rs.metadata, &alive))
    {
        out.push(Action::DeleteReplicaSet {
            namespace: rs.metadata.namespace.clone().unwrap_or_default(),
            name: rs.metadata.name.clone().unwrap_or_default(),
            uid: rs.metadata.uid.clone().unwrap_or_default(),
        });
    }
    for p in w.pods.iter().filter(|p| abandoned(&p.metadata, &alive)) {
        out.push(Action::DeletePod {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            why: "owner gone",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn world(v: serde_json::Value) -> World {
        let items = |k: &str| v[k].as_array().cloned().unwrap_or_default();
        World {
            pods: items("pods")
                .into_iter()
                .filter_map(|p| serde_json::from_value(p).ok())
                .collect(),
            replica_sets: items("rs")
                .into_iter()
                .filter_map(|p| serde_json::from_value(p).ok())
                .collect(),
            nodes: items("nodes")
                .into_iter()
                .filter_map(|p| serde_json::from_value(p).ok())
                .collect(),
            ..World::default()
        }
    }

    fn names(a: &[Action]) -> Vec<String> {
        a.iter()
            .filter_map(|a| match a {
                Action::DeletePod { name, .. } | Action::DeleteReplicaSet { name, .. } => {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn pods_on_missing_nodes_go_after_the_quarantine() {
        let w = world(json!({
        "nodes": [{"metadata": {"name": "here"}}],
        "pods": [
            {"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "here"}},
            {"metadata": {"name": "b"}, "spec": {"containers": [], "nodeName": "gone"}},
            {"metadata": {"name": "c"}, "spec": {"containers": []}}
        ]}));
        let mut missing = Missing::new();
        let t0 = Instant::now();
        let q = Duration::from_secs(5);
        assert_eq!(
            names(&orphaned_pods(&w, &mut missing, t0, q)),
            Vec::<String>::new()
        );
        assert_eq!(names(&orphaned_pods(&w, &mut missing, t0 + q, q)), ["b"]);
        let back = world(json!({"nodes": [{"metadata": {"name": "gone"}}]}));
        let _ = orphaned_pods(&back, &mut missing, t0 + q, q);
        assert!(missing.is_empty());
    }

    #[test]
    fn dependents_of_deleted_owners_go() {
        let owned = |name: &str, kind: &str, uid: &str| {
            json!({"metadata": {"name": name, "uid": name,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": uid, "controller": true}]},
            "spec": {"containers": []}})
        };
        let mut mirror = owned("mirror", "Node", "node-uid");
        mirror["metadata"]["ownerReferences"][0]["apiVersion"] = json!("v1");
        let w = world(json!({
            "rs": [owned("rs-orphan", "Deployment", "deleted"), {"metadata": {"name": "rs-free", "uid": "rs-free"}}],
            "pods": [owned("p-live", "ReplicaSet", "rs-free"), owned("p-orphan", "ReplicaSet", "rs-orphan-old"),
                mirror, {"metadata": {"name": "bare"}}]
        }));
        assert_eq!(names(&abandoned_dependents(&w)), ["rs-orphan", "p-orphan"]);
    }
}
