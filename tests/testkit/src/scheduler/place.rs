//! Where a pending pod goes: filter the nodes with `controllers::fit` (the same rules
//! the DaemonSet controller uses), then spread: the fewest pods of
//! the same owner, or matching its preferred pod anti-affinity terms on
//! `kubernetes.io/hostname`, then node name order. Pure.
//!
//! Host ports are checked like kube-scheduler's NodePorts filter (`kubelet::ports`): a
//! pod does not go to a node where an active pod already uses one of its
//! (hostIP, protocol, hostPort) triples; the kubelet would reject it there. A
//! hostNetwork pod's ports count through the api-server's defaulting, as upstream.
//!
//! Node readiness is read as kube-scheduler reads it: through the taints on the Node
//! (TaintToleration filter). The node lifecycle controller of fake-controller-manager
//! puts `node.kubernetes.io/not-ready` or `unreachable` on a node that is not Ready;
//! without a controller-manager a dead node stays untainted and may still be picked,
//! as upstream.
//!
//! Not done: resource requests, volumes, required pod (anti-)affinity,
//! topology spread constraints, preferred node affinity, priorities and preemption.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::controllers::{fit, pods, selectors};
use crate::kubelet::ports::{self, HostPort, host_ports};

pub const DEFAULT_SCHEDULER: &str = "default-scheduler";
const HOSTNAME: &str = "kubernetes.io/hostname";

/// The outcome for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    Bind(String),
    /// kube-scheduler's `FailedScheduling` message.
    Unschedulable(String),
}

/// Unbound, for this scheduler, and neither finished nor being deleted.
pub fn wants_scheduling(p: &Pod) -> bool {
    let spec = p.spec.as_ref();
    let name = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("");
    pods::node_name(p).is_empty()
        && (name.is_empty() || name == DEFAULT_SCHEDULER)
        && pods::is_active(p)
}

/// How many pods already on the node this one should avoid.
fn spread_score(pod: &Pod, node: &str, all: &[Pod]) -> usize {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let owner = pods::controller_uid(&pod.metadata);
    let terms: Vec<_> = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .map(|w| &w.pod_affinity_term)
        .filter(|t| t.topology_key == HOSTNAME)
        .collect();
    let empty = selectors::Labels::new();
    all.iter()
        .filter(|o| {
            pods::node_name(o) == node && pods::is_active(o) && o.metadata.uid != pod.metadata.uid
        })
        .filter(|o| {
            let o_ns = o.metadata.namespace.as_deref().unwrap_or("");
            let same_owner = owner.is_some() && pods::controller_uid(&o.metadata) == owner;
            let labels = o.metadata.labels.as_ref().unwrap_or(&empty);
            let anti = terms.iter().any(|t| {
                let in_ns = match t.namespaces.as_deref() {
                    Some(list) if !list.is_empty() => list.iter().any(|n| n == o_ns),
                    _ => o_ns == ns,
                };
                in_ns
                    && t.label_selector
                        .as_ref()
                        .is_some_and(|s| selectors::label_selector(s, labels))
            });
            same_owner || anti
        })
        .count()
}

/// kube-scheduler's NodePorts filter (`fitsPorts`): the pod's (hostIP, protocol,
/// hostPort) triples against those of the active pods already on the node.
fn free_ports(pod: &Pod, node: &str, all: &[Pod]) -> Result<(), String> {
    let used: Vec<HostPort> = all
        .iter()
        .filter(|o| pods::node_name(o) == node && pods::is_active(o))
        .filter(|o| o.metadata.uid != pod.metadata.uid)
        .flat_map(host_ports)
        .collect();
    ports::fits(pod, &used).map_err(String::from)
}

/// Picks a node for `pod` among `nodes`, given every pod already placed.
pub fn place(pod: &Pod, nodes: &[Node], all: &[Pod]) -> Decision {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(usize, &str)> = None;
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let fits = fit::check(&spec, node).map_err(|why| why.phrase());
        match fits.and_then(|()| free_ports(pod, name, all)) {
            Err(why) => *reasons.entry(why).or_default() += 1,
            Ok(()) => {
                let score = (spread_score(pod, name, all), name);
                if best.is_none_or(|b| score < b) {
                    best = Some(score);
                }
            }
        }
    }
    if let Some((_, name)) = best {
        return Decision::Bind(name.to_string());
    }
    if nodes.is_empty() {
        return Decision::Unschedulable("no nodes available to schedule pods".into());
    }
    let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    Decision::Unschedulable(format!(
        "0/{} nodes are available: {}.",
        nodes.len(),
        why.join(", ")
    ))
}

#[cfg(test)]
#[path = "place_tests.rs"]
mod tests;
