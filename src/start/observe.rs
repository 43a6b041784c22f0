//! What `start` believes about the self-hosted control plane, decided from one listing
//! of pods, nodes, leases and ReplicaSets. Pure, so every rule below is unit-tested
//! without a server.
//!
//! Rules, each answering a bootkube failure (docs/bootkube-notes.md §5):
//! - *Owned by its controller.* A required `ns/name` is satisfied by pods whose
//!   controller is the DaemonSet `name`, or a ReplicaSet controlled by the Deployment
//!   `name`. bootkube took the first pod whose name merely started with `name`, so a
//!   bootstrap mirror pod or an unrelated pod could satisfy it.
//! - *Live nodes only* (#333, #974). A node counts when its kubelet renewed its Lease
//!   (or, without a Lease, its Ready heartbeat) within `node_grace`. Pods on dead
//!   masters are ignored instead of blocking recovery.
//! - *No stale status* (#601). A `Running`/`Ready` status read back from etcd may predate
//!   the disaster. A pod's status is trusted when it carries evidence written after
//!   `since` (the pod was created, a container started, or Ready last changed after it).
//!   A pod that was already Ready before `since` and is still Ready is trusted only after
//!   it has been seen Ready, on a live node, continuously for `settle`, and its kubelet
//!   has renewed its node Lease since it was first seen so: a live kubelet rewrites a
//!   wrong status well within that, and a kubelet that died moments ago (its node still
//!   inside `node_grace`) renews nothing, so its pods' last words are never believed.
//!   A status the node's own container runtime vouches for ([`World::confirmed`]) is
//!   current at once.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// A required component: pods owned by the DaemonSet or Deployment `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Required {
    pub namespace: String,
    pub name: String,
}

impl Required {
    /// `ns/name`, as bootkube's `--required-pods` took it.
    pub fn parse(s: &str) -> Result<Required, String> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(Required {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
        }
    }
}

impl std::fmt::Display for Required {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One listing of the cluster.
#[derive(Debug, Default, Clone)]
pub struct World {
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub leases: Vec<Lease>,
    pub replicasets: Vec<ReplicaSet>,
    /// UIDs of pods whose status this node's container runtime vouches for
    /// (`ensure::witness`): current whatever its age. Left empty by `start`, whose
    /// pivots need evidence from after a removal, which no runtime gives.
    pub confirmed: BTreeSet<String>,
}

/// How far a required component has come, worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// No owned pod on a live node, or only ones that failed for good (a pod the
    /// kubelet rejected at admission, e.g. for a held host port, is `Failed` and never
    /// runs; its controller must replace it).
    Missing,
    /// An owned pod is bound to a live node but not running (waiting, crash-looping).
    Scheduled,
    /// Running and Ready, but the status may predate `since`.
    Unconfirmed,
    /// Ready, with a status known to be current.
    Ready,
}

/// The verdict on one component, with the reason to show while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub stage: Stage,
    pub detail: String,
}

/// Timing knobs of the rules above.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub node_grace: SignedDuration,
    pub settle: SignedDuration,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            node_grace: SignedDuration::from_secs(40),
            settle: SignedDuration::from_secs(10),
        }
    }
}

/// When each node's kubelet last reported: its Lease's renewTime, or without a Lease
/// its Ready condition's heartbeat.
fn last_reports(w: &World) -> BTreeMap<&str, Timestamp> {
    let lease_renew: BTreeMap<&str, Option<Timestamp>> = w
        .leases
        .iter()
        .filter(|l| l.metadata.namespace.as_deref() == Some("kube-node-lease"))
        .filter_map(|l| {
            let renew = l
                .spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0);
            Some((l.metadata.name.as_deref()?, renew))
        })
        .collect();
    w.nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let at = match lease_renew.get(name) {
                Some(renew) => *renew,
                None => ready_heartbeat(n),
            };
            Some((name, at?))
        })
        .collect()
}

/// Nodes whose kubelet has reported within `grace` of `now`.
pub fn live_nodes(w: &World, now: Timestamp, grace: SignedDuration) -> BTreeSet<String> {
    last_reports(w)
        .into_iter()
        .filter(|(_, at)| now.duration_since(*at) <= grace)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn ready_heartbeat(n: &Node) -> Option<Timestamp> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_heartbeat_time
        .as_ref()
        .map(|t| t.0)
}

fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// Whether `pod` belongs to the DaemonSet or Deployment named by `req`.
pub fn owned_by(pod: &Pod, req: &Required, replicasets: &[ReplicaSet]) -> bool {
    if pod.metadata.namespace.as_deref() != Some(req.namespace.as_str()) {
        return false;
    }
    let Some(owner) = controller(&pod.metadata) else {
        return false;
    };
    match owner.kind.as_str() {
        "DaemonSet" => owner.name == req.name,
        "ReplicaSet" => replicasets.iter().any(|rs| {
            rs.metadata.namespace == pod.metadata.namespace
                && rs.metadata.name.as_deref() == Some(owner.name.as_str())
                && controller(&rs.metadata)
                    .is_some_and(|d| d.kind == "Deployment" && d.name == req.name)
        }),
        _ => false,
    }
}

/// Whether a pod's controller is a ReplicaSet, as a Deployment's pods' is.
pub fn owned_by_deployment(pod: &Pod) -> bool {
    controller(&pod.metadata).is_some_and(|o| o.kind == "ReplicaSet")
}

fn condition(pod: &Pod, type_: &str) -> Option<(bool, Option<Timestamp>)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        c.status == "True",
        c.last_transition_time.as_ref().map(|t| t.0),
    ))
}

/// Evidence that the kubelet wrote this pod's status after `since`.
pub fn fresh_since(pod: &Pod, since: Timestamp) -> bool {
    let after = |t: Option<Timestamp>| t.is_some_and(|t| t >= since);
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let started = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
        .map(|t| t.0)
        .max();
    let ready_changed = condition(pod, "Ready").and_then(|(_, t)| t);
    after(created) || after(started) || after(ready_changed)
}

/// A pod in a terminal phase: the kubelet will never run it again.
fn finished(pod: &Pod) -> Option<&str> {
    let phase = pod.status.as_ref()?.phase.as_deref()?;
    matches!(phase, "Failed" | "Succeeded").then_some(phase)
}

/// Why a bound pod is not running yet, for the waiting line.
fn waiting_reason(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let reason = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    reason
        .or_else(|| status.and_then(|s| s.phase.clone()))
        .unwrap_or_else(|| "no status yet".into())
}

/// The best stage any owned pod on a live node reached. `ready_since` maps pod UIDs to
/// when they were first seen Ready in an unbroken run of observations (kept by the caller).
pub fn assess(
    req: &Required,
    w: &World,
    live: &BTreeSet<String>,
    since: Timestamp,
    now: Timestamp,
    rules: &Rules,
    ready_since: &BTreeMap<String, Timestamp>,
) -> Verdict {
    let mut best = Verdict {
        stage: Stage::Missing,
        detail: format!("no pod of {req} on a live node"),
    };
    let reports = last_reports(w);
    for pod in w.pods.iter().filter(|p| owned_by(p, req, &w.replicasets)) {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Some(node) = node.filter(|n| live.contains(*n)) else {
            continue;
        };
        if let Some(phase) = finished(pod) {
            if best.stage == Stage::Missing {
                let status = pod.status.as_ref();
                let why = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
                let msg = status.and_then(|s| s.message.as_deref()).unwrap_or("");
                best.detail = format!("{name} on {node} is {phase}: {why} {msg}")
                    .trim_end()
                    .to_string();
            }
            continue;
        }
        let ready = condition(pod, "Ready").is_some_and(|(r, _)| r);
        let verdict = if !ready {
            Verdict {
                stage: Stage::Scheduled,
                detail: format!("{name} on {node}: {}", waiting_reason(pod)),
            }
        } else if fresh_since(pod, since)
            || pod
                .metadata
                .uid
                .as_ref()
                .is_some_and(|u| w.confirmed.contains(u))
            || pod
                .metadata
                .uid
                .as_ref()
                .and_then(|u| ready_since.get(u))
                .is_some_and(|first| {
                    now.duration_since(*first) >= rules.settle
                        && reports.get(node).is_some_and(|at| at > first)
                })
        {
            Verdict {
                stage: Stage::Ready,
                detail: format!("{name} on {node} is Ready"),
            }
        } else {
            Verdict {
                stage: Stage::Unconfirmed,
                detail: format!("{name} on {node} reports Ready from before start; confirming"),
            }
        };
        if verdict.stage > best.stage {
            best = verdict;
        }
    }
    best
}

/// Updates `ready_since` (pod UID → first Ready observation of the current run) from a
/// new listing: pods not Ready now, or on a dead node, start over.
pub fn track_ready(
    ready_since: &mut BTreeMap<String, Timestamp>,
    w: &World,
    live: &BTreeSet<String>,
    now: Timestamp,
) {
    let ready_now: BTreeSet<&str> = w
        .pods
        .iter()
        .filter(|p| condition(p, "Ready").is_some_and(|(r, _)| r))
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| live.contains(n))
        })
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    ready_since.retain(|uid, _| ready_now.contains(uid.as_str()));
    for uid in ready_now {
        ready_since.entry(uid.to_string()).or_insert(now);
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
