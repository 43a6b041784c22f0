//! The node lifecycle controller (`pkg/controller/nodelifecycle/node_lifecycle_controller.go`),
//! so that a master whose kubelet died shows in the API as it does in a real cluster:
//! `Ready=Unknown`, tainted `node.kubernetes.io/unreachable`, its pods no longer Ready.
//!
//! *Expected flow* (one [`Lifecycle::monitor`] pass every `--node-monitor-period`):
//! - `tryUpdateNodeHealth`: a node's probe time is *this controller's* clock at the last
//!   change it saw in the Ready condition's `lastHeartbeatTime` or in the node Lease's
//!   `renewTime` (`kube-node-lease`). A node not seen before gets "now", so a new
//!   leader gives every node a full grace period. Once the probe time is older than
//!   `--node-monitor-grace-period` (`--node-startup-grace-period` for a node that never
//!   posted Ready), Ready, MemoryPressure, DiskPressure and PIDPressure become
//!   `Unknown`, reason `NodeStatusUnknown`, "Kubelet stopped posting node status." (a
//!   missing one is added as `NodeStatusNeverUpdated`), written with an update guarded
//!   by the node's resourceVersion.
//! - `doNoScheduleTaintingPass`: the `NoSchedule` taints follow the current conditions
//!   (`not-ready` for Ready=False, `unreachable` for Unknown, the pressure ones, and
//!   `unschedulable` for `spec.unschedulable`).
//! - `processTaintBaseEviction`: from the Ready condition as it was *before* this pass,
//!   the `NoExecute` taint `not-ready` (False) or `unreachable` (Unknown), swapped when the
//!   other one is there, and both removed once Ready is True (`markNodeAsReachable`).
//! - `MarkPodsNotReady` (`pkg/controller/util/node`): when Ready leaves True, every pod
//!   bound to the node gets its Ready condition False (new `lastTransitionTime`); a node
//!   whose marking failed is retried next pass (`nodesToRetry`).
//! - `handleDisruption`/`ComputeZoneState`: per zone (`topology.kubernetes.io/region` and
//!   `zone` labels), no Ready node is a full disruption, ≥ 55 % not Ready (and more than
//!   2) a partial one. With every zone fully disrupted no `NoExecute` taint is added and
//!   the existing ones are removed; leaving that state restarts every node's grace.
//!
//! *Still simplified.* No rate limit on `NoExecute` tainting (upstream: 0.1 node/s,
//! burst 1, so the first node is tainted at once as here); the partial-disruption
//! limiter is modelled only for clusters of ≤ 50 nodes (no tainting); no events; pods
//! bound to an already not-Ready node are not marked (`processPod`); labels are not
//! reconciled. Pure: the executor is `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::config::NodeFlags;
use super::world::Action;

pub use super::nodetaints::{NOT_READY, UNREACHABLE, reconcile_taints};
/// `unhealthyZoneThreshold` and `largeClusterSizeThreshold` defaults.
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
const LARGE_CLUSTER: usize = 50;
const EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// `nodeHealthData`: what was last seen of a node, and when (by this controller's clock).
#[derive(Debug, Clone, PartialEq)]
struct Health {
    probe: Timestamp,
    /// The Ready condition last seen (`None`: the node had none).
    ready: Option<NodeCondition>,
    lease_renew: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    Initial,
    Normal,
    Partial,
    Full,
}

/// The writes of one pass: node status and taint updates, then per node the
/// `MarkPodsNotReady` pod status updates (the executor reports back per node through
/// [`Lifecycle::marked`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    pub writes: Vec<Action>,
    pub mark: BTreeMap<String, Vec<Action>>,
}

/// The controller's memory across passes, as upstream keeps it in the process: a new
/// leader starts empty.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    flags: NodeFlags,
    health: BTreeMap<String, Health>,
    retry: BTreeSet<String>,
    zones: BTreeMap<String, Zone>,
}

pub(super) fn condition<'a>(n: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `nodetopology.GetZoneKey`: region and zone labels, stable or beta.
pub fn zone_key(n: &Node) -> String {
    let l = n.metadata.labels.clone().unwrap_or_default();
    let get = |a: &str, b: &str| l.get(a).or_else(|| l.get(b)).cloned().unwrap_or_default();
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

/// `ComputeZoneState` from the current Ready conditions of a zone's nodes.
fn zone_state(ready: &[bool]) -> Zone {
    let up = ready.iter().filter(|r| **r).count();
    let down = ready.len() - up;
    #[allow(clippy::cast_precision_loss)]
    let ratio = down as f64 / ready.len().max(1) as f64;
    if up == 0 && down > 0 {
        Zone::Full
    } else if down > 2 && ratio >= UNHEALTHY_ZONE_THRESHOLD {
        Zone::Partial
    } else {
        Zone::Normal
    }
}

/// `MarkPodsNotReady`: the pods bound to `node` whose Ready condition is not yet False,
/// as status updates setting it False.
pub fn mark_pods_not_ready(node: &str, pods: &[Pod], wall: Timestamp) -> Vec<Action> {
    pods.iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .filter_map(|p| {
            let mut pod = p.clone();
            let cond = pod
                .status
                .as_mut()?
                .conditions
                .as_mut()?
                .iter_mut()
                .find(|c| c.type_ == "Ready")?;
            if cond.status == "False" {
                return None;
            }
            cond.status = "False".into();
            cond.last_transition_time = Some(Time(wall));
            Some(Action::PodStatus(Box::new(pod)))
        })
        .collect()
}

impl Lifecycle {
    pub fn new(flags: NodeFlags) -> Lifecycle {
        Lifecycle {
            flags,
            health: BTreeMap::new(),
            retry: BTreeSet::new(),
            zones: BTreeMap::new(),
        }
    }

    /// How marking `node`'s pods went: a failure retries it next pass.
    pub fn marked(&mut self, node: &str, ok: bool) {
        if ok {
            self.retry.remove(node);
        } else {
            self.retry.insert(node.to_string());
        }
    }

    /// `tryUpdateNodeHealth` for one node: updates the health record and returns the
    /// Ready condition observed (before this pass) and the node as it should now be.
    fn update_health(
        &mut self,
        node: &Node,
        lease: Option<&Lease>,
        now: Timestamp,
    ) -> (NodeCondition, Node, SignedDuration) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let created = node
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, |t| t.0);
        let current = condition(node, "Ready").cloned();
        let (observed, grace) = match &current {
            Some(c) => (c.clone(), self.flags.monitor_grace_period),
            None => (
                NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    last_heartbeat_time: Some(Time(created)),
                    last_transition_time: Some(Time(created)),
                    ..Default::default()
                },
                self.flags.startup_grace_period,
            ),
        };
        let fresh = |probe| Health {
            probe,
            ready: current.clone(),
            lease_renew: None,
        };
        let mut h = match self.health.remove(&name) {
            None if current.is_none() => fresh(created),
            None => fresh(now),
            Some(saved) => match (&saved.ready, &current) {
                (None, None) => saved,
                (Some(s), Some(c)) if s.last_heartbeat_time == c.last_heartbeat_time => saved,
                (_, _) => Health {
                    lease_renew: saved.lease_renew,
                    ..fresh(now)
                },
            },
        };
        let renew = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
        if let Some(r) = renew
            && h.lease_renew.is_none_or(|saved| saved < r)
        {
            h.lease_renew = Some(r);
            h.probe = now;
        }
        let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
        let mut updated = node.clone();
        if now.duration_since(h.probe) > grace {
            let st = updated.status.get_or_insert_with(Default::default);
            let conds = st.conditions.get_or_insert_with(Vec::new);
            for type_ in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
                match conds.iter_mut().find(|c| c.type_ == type_) {
                    None => conds.push(NodeCondition {
                        type_: type_.into(),
                        status: "Unknown".into(),
                        reason: Some("NodeStatusNeverUpdated".into()),
                        message: Some("Kubelet never posted node status.".into()),
                        last_heartbeat_time: Some(Time(created)),
                        last_transition_time: Some(Time(now)),
                    }),
                    Some(c) if c.status != "Unknown" => {
                        c.status = "Unknown".into();
                        c.reason = Some("NodeStatusUnknown".into());
                        c.message = Some("Kubelet stopped posting node status.".into());
                        c.last_transition_time = Some(Time(now));
                    }
                    Some(_) => {}
                }
            }
        }
        self.health.insert(name, h);
        (observed, updated, grace)
    }

    /// One `monitorNodeHealth` pass over every node.
    pub fn monitor(
        &mut self,
        nodes: &[Node],
        leases: &[Lease],
        pods: &[Pod],
        now: Timestamp,
    ) -> Pass {
        let names: BTreeSet<String> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.health.retain(|n, _| names.contains(n));
        self.retry.retain(|n| names.contains(n));
        let mut pass = Pass::default();
        let mut seen = Vec::new();
        for node in nodes {
            let name = node.metadata.name.as_deref().unwrap_or("");
            let lease = leases
                .iter()
                .find(|l| l.metadata.name.as_deref() == Some(name));
            let (observed, updated, _) = self.update_health(node, lease, now);
            let current = condition(&updated, "Ready").cloned();
            if current.as_ref().is_some_and(|c| *c != observed) {
                pass.writes
                    .push(Action::NodeStatus(Box::new(updated.clone())));
            }
            seen.push((node, observed, updated));
        }
        // handleDisruption, from the current Ready conditions.
        let mut by_zone: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for (node, _, updated) in &seen {
            let excluded = node
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(EXCLUDE_DISRUPTION));
            if !excluded {
                let ready = condition(updated, "Ready").is_some_and(|c| c.status == "True");
                by_zone.entry(zone_key(node)).or_default().push(ready);
            }
        }
        let new_states: BTreeMap<String, Zone> = by_zone
            .iter()
            .map(|(z, r)| (z.clone(), zone_state(r)))
            .collect();
        let all_full = !new_states.is_empty() && new_states.values().all(|s| *s == Zone::Full);
        let all_were_full = !self.zones.is_empty() && self.zones.values().all(|s| *s == Zone::Full);
        for (node, observed, updated) in seen {
            let name = node.metadata.name.clone().unwrap_or_default();
            let zone = self
                .zones
                .get(&zone_key(node))
                .copied()
                .unwrap_or(Zone::Initial);
            let size = by_zone.get(&zone_key(node)).map_or(0, Vec::len);
            let may_taint = !all_were_full && (zone != Zone::Partial || size > LARGE_CLUSTER);
            let have = |k: &str| {
                node.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|ts| ts.iter().any(|t| t.key == k && t.effect == "NoExecute"))
            };
            let no_execute = if all_full && !all_were_full {
                Some(None)
            } else {
                match observed.status.as_str() {
                    "False" if have(UNREACHABLE) || may_taint => Some(Some(NOT_READY)),
                    "Unknown" if have(NOT_READY) || may_taint => Some(Some(UNREACHABLE)),
                    "False" | "Unknown" => None,
                    _ => Some(None),
                }
            };
            let has_ready = condition(&updated, "Ready").is_some();
            if let Some(taints) =
                reconcile_taints(&updated, if has_ready { no_execute } else { None }, now)
            {
                pass.writes.push(Action::NodeTaints {
                    name: name.clone(),
                    taints,
                });
            }
            let Some(current) = condition(&updated, "Ready") else {
                continue;
            };
            let went_down = current.status != "True" && observed.status == "True";
            let again = self.retry.contains(&name) && observed.status != "True";
            if went_down || again {
                pass.mark
                    .insert(name.clone(), mark_pods_not_ready(&name, pods, now));
            } else {
                self.retry.remove(&name);
            }
        }
        if all_were_full && !all_full {
            for h in self.health.values_mut() {
                h.probe = now;
            }
        }
        self.zones = new_states;
        pass
    }
}

#[cfg(test)]
#[path = "nodelifecycle_tests.rs"]
mod tests;
