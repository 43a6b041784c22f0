//! The DaemonSet controller: one pod per eligible node. Pure: [`plan`] maps one
//! DaemonSet, the nodes and the pods to the writes that move towards that.
//!
//! *Expected flow.* Per node (`NodeShouldRunDaemonPod`): an eligible node (nodeSelector,
//! required node affinity, and every `NoSchedule`/`NoExecute` taint tolerated, see
//! `fit.rs`) without an active pod gets one; finished pods are deleted (and replaced); a
//! node that is not eligible but whose `NoExecute` taints the pod tolerates
//! (`shouldContinueRunning`, e.g. an unreachable master: the daemon tolerations cover
//! its `NoExecute` taint but not its `NoSchedule` one) keeps its pod, counted as
//! misscheduled and not desired, and gets no new one; any other node no longer eligible
//! loses its pods; a second active pod on a node is deleted. Then the rollout: with
//! `RollingUpdate`, pods whose `controller-revision-hash` is stale are deleted, those
//! not ready at once and ready ones only while fewer than `maxUnavailable` (default 1)
//! nodes lack a ready pod; the next cycle creates their replacements. With `OnDelete`
//! stale pods stay until someone deletes them.
//!
//! *Guarantees.* As since Kubernetes 1.12, created pods are not bound: they carry the
//! required node affinity `matchFields metadata.name In [node]`
//! ([`node_name_affinity`]) and wait for the scheduler, which places them honouring that
//! affinity, taints and host ports. No scheduler, no daemon pod running: a recovery
//! must bring a scheduler up before it needs a DaemonSet's pods. They get the daemon
//! tolerations (`fit::with_daemon_tolerations`), the template's labels plus
//! `controller-revision-hash`, and a controller ownerReference.
//!
//! *Assumptions.* Deletes are immediate (the fake api-server has no graceful deletion),
//! so a replacement may be created in the next cycle. Pods on nodes that do not exist
//! are left to the pod GC.
//!
//! *Caveats / not done.* No ControllerRevisions (the hash is computed from the current
//! template, so a rollback is just another rollout), no `maxSurge`, no
//! `minReadySeconds`, no orphan adoption by selector, no failed-pod back-off.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::world::{self, Action, Owner};
use super::{fit, hash, pods};

pub const REVISION_HASH: &str = "controller-revision-hash";

fn delete(p: &Pod, why: &'static str) -> Action {
    Action::DeletePod {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        why,
    }
}

/// `maxUnavailable` scaled to `desired` (percentages round up), at least 1.
pub fn max_unavailable(v: Option<&IntOrString>, desired: i32) -> i32 {
    let n = match v {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(1, |p| {
                i32::try_from((p * i64::from(desired) + 99) / 100).unwrap_or(1)
            }),
        None => 1,
    };
    n.max(1)
}

fn pod_hash(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// The pod this DaemonSet creates on `node`.
pub fn new_pod(ds: &DaemonSet, node: &str, revision: &str) -> Pod {
    let spec = ds.spec.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let owner = pods::owner("DaemonSet", &ds.metadata);
    let mut pod = pods::from_template(&spec.template, &ns, &name, owner);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH.into(), revision.into());
    if let Some(s) = pod.spec.as_mut() {
        s.node_name = None;
        s.affinity = Some(node_name_affinity(s.affinity.take(), node));
        fit::with_daemon_tolerations(s);
    }
    pod
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity` (`pkg/controller/daemon/util/daemonset_util.go`):
/// the required node affinity becomes the single term `matchFields metadata.name In
/// [node]`, replacing the template's required terms; the rest of the affinity stays.
pub fn node_name_affinity(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        ..Default::default()
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    affinity
}

/// The node a daemon pod belongs to (`GetTargetNodeName`): its `nodeName` once bound,
/// else the one value of its `metadata.name` node-affinity field term.
pub fn target_node(p: &Pod) -> &str {
    let bound = pods::node_name(p);
    if !bound.is_empty() {
        return bound;
    }
    let terms = p
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or(&[]);
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

/// The writes for one DaemonSet, and its status patch if the status changed.
#[must_use]
pub fn plan(ds: &DaemonSet, nodes: &[Node], all_pods: &[Pod]) -> Vec<Action> {
    let spec = ds.spec.clone().unwrap_or_default();
    let revision = hash::template_hash(&spec.template);
    let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
    fit::with_daemon_tolerations(&mut pod_spec);
    let uid = ds.metadata.uid.as_deref();
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in all_pods
        .iter()
        .filter(|p| pods::controlled_by(&p.metadata, uid))
    {
        by_node.entry(target_node(p)).or_default().push(p);
    }
    let mut actions = Vec::new();
    let mut st = DaemonSetStatus::default();
    // Ready stale pods that a rollout may replace, and nodes without a ready pod.
    let (mut stale_ready, mut unavailable) = (Vec::new(), 0);
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let mut here: Vec<&Pod> = by_node.remove(name).unwrap_or_default();
        if fit::check(&pod_spec, node).is_err() {
            if here.iter().any(|p| pods::is_active(p)) {
                st.number_misscheduled += 1;
            }
            if fit::may_stay(&pod_spec, node) {
                // `shouldContinueRunning` without `shouldRun` (e.g. an unreachable
                // node's NoSchedule taint): keep the running pod, make no new one.
                actions.extend(
                    here.iter()
                        .filter(|p| pods::is_terminal(p))
                        .map(|p| delete(p, "finished")),
                );
                continue;
            }
            actions.extend(here.iter().map(|p| delete(p, "node not eligible")));
            continue;
        }
        st.desired_number_scheduled += 1;
        actions.extend(
            here.iter()
                .filter(|p| pods::is_terminal(p))
                .map(|p| delete(p, "finished")),
        );
        here.retain(|p| pods::is_active(p));
        // Keep the updated one, then the oldest.
        here.sort_by_key(|p| {
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (pod_hash(p) != Some(revision.as_str()), created)
        });
        let Some((keep, extra)) = here.split_first() else {
            actions.push(Action::CreatePod(Box::new(new_pod(ds, name, &revision))));
            unavailable += 1;
            continue;
        };
        actions.extend(extra.iter().map(|p| delete(p, "more than one on the node")));
        st.current_number_scheduled += 1;
        let ready = pods::is_ready(keep);
        if ready {
            st.number_ready += 1;
        } else {
            unavailable += 1;
        }
        if pod_hash(keep) == Some(revision.as_str()) {
            st.updated_number_scheduled = Some(st.updated_number_scheduled.unwrap_or(0) + 1);
        } else if ready {
            stale_ready.push(*keep);
        } else if !on_delete(ds) {
            actions.push(delete(keep, "stale template, not ready"));
        }
    }
    if !on_delete(ds) {
        let strategy = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref());
        let budget = max_unavailable(
            strategy.and_then(|r| r.max_unavailable.as_ref()),
            st.desired_number_scheduled,
        );
        let room = usize::try_from(budget - unavailable).unwrap_or(0);
        actions.extend(
            stale_ready
                .into_iter()
                .take(room)
                .map(|p| delete(p, "stale template")),
        );
    }
    st.number_available = Some(st.number_ready);
    st.number_unavailable = Some(st.desired_number_scheduled - st.number_ready);
    st.updated_number_scheduled.get_or_insert(0);
    st.observed_generation = ds.metadata.generation;
    let old = ds.status.clone().unwrap_or_default();
    st.conditions = old.conditions.clone();
    st.collision_count = old.collision_count;
    if world::status_changed(&old, &st) {
        actions.push(Action::Status {
            owner: Owner::DaemonSet,
            namespace: ds.metadata.namespace.clone().unwrap_or_default(),
            name: ds.metadata.name.clone().unwrap_or_default(),
            status: serde_json::to_value(&st).unwrap_or_default(),
        });
    }
    actions
}

fn on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

#[cfg(test)]
#[path = "daemonset_tests.rs"]
mod tests;
