//! The taint eviction controller (`pkg/controller/tainteviction/taint_eviction.go`,
//! `processPodOnNode` and `getMinTolerationTime`): a pod bound to a node with
//! `NoExecute` taints is deleted at once if a taint is not tolerated, after the smallest
//! `tolerationSeconds` of the tolerations used if all are, and never if those
//! tolerations have no `tolerationSeconds` (DaemonSet pods). The clock starts when this
//! controller first sees the pod under the taints, as upstream's timed work queue,
//! which a new leader starts empty; it stops when the taints go or become tolerated
//! for ever.
//!
//! *Still simplified.* The pod is deleted without first getting the `DisruptionTarget`
//! condition (`DeletionByTaintManager`); since the fake api-server deletes at once, the
//! pod is gone, where a real one stays `Terminating` on the dead node until its kubelet
//! confirms (or the pod GC acts). No events. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use super::fit::tolerates;
use super::pods;
use super::world::Action;

/// When each pod's eviction clock started, by uid.
#[derive(Debug, Default, Clone)]
pub struct Evictions {
    started: BTreeMap<String, Timestamp>,
}

/// How long `tolerations` keep a pod on a node with `taints` (`NoExecute` only):
/// `None` for ever, `Some(0)` not at all.
pub fn toleration_time(tolerations: &[Toleration], taints: &[Taint]) -> Option<Duration> {
    let mut min: Option<Duration> = None;
    for t in taints {
        // `GetMatchingTolerations`: the first toleration that matches each taint.
        let Some(used) = tolerations.iter().find(|tol| tolerates(tol, t)) else {
            return Some(Duration::ZERO);
        };
        if let Some(secs) = used.toleration_seconds {
            let d = Duration::from_secs(u64::try_from(secs).unwrap_or(0));
            min = Some(min.map_or(d, |m| m.min(d)));
        }
    }
    min
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

impl Evictions {
    /// The deletions due at `now`.
    pub fn plan(&mut self, nodes: &[Node], all: &[Pod], now: Timestamp) -> Vec<Action> {
        let taints: BTreeMap<&str, Vec<Taint>> = nodes
            .iter()
            .map(|n| (n.metadata.name.as_deref().unwrap_or(""), no_execute(n)))
            .collect();
        let mut out = Vec::new();
        let mut keep = BTreeMap::new();
        for p in all.iter().filter(|p| pods::is_active(p)) {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let Some(taints) = taints.get(pods::node_name(p)).filter(|t| !t.is_empty()) else {
                continue;
            };
            let tolerations = p
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let Some(wait) = toleration_time(&tolerations, taints) else {
                continue;
            };
            let start = self.started.get(&uid).copied().unwrap_or(now);
            let due = start
                .checked_add(
                    jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(Timestamp::MAX);
            if now >= due {
                out.push(Action::DeletePod {
                    namespace: p.metadata.namespace.clone().unwrap_or_default(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    uid: uid.clone(),
                    why: "NoExecute taint: taint eviction",
                });
            }
            keep.insert(uid, start);
        }
        self.started = keep;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn node(name: &str, taints: Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"taints": taints}}))
            .unwrap_or_default()
    }

    fn pod(name: &str, node: &str, tolerations: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "ns", "uid": name},
            "spec": {"nodeName": node, "containers": [], "tolerations": tolerations},
            "status": {"phase": "Running"}}),
        )
        .unwrap_or_default()
    }

    fn deleted(a: &[Action]) -> Vec<String> {
        a.iter()
            .filter_map(|a| match a {
                Action::DeletePod { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn untolerated_now_seconds_later_daemons_never() {
        let unreachable = json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]);
        let nodes = [node("dead", unreachable), node("fine", json!([]))];
        let default_tol = json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]);
        let daemon_tol = json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]);
        let pods = [
            pod("bare", "dead", json!([])),
            pod("web", "dead", default_tol.clone()),
            pod("daemon", "dead", daemon_tol),
            pod("elsewhere", "fine", json!([])),
        ];
        let mut ev = Evictions::default();
        let t0 = Timestamp::UNIX_EPOCH;
        assert_eq!(deleted(&ev.plan(&nodes, &pods, t0)), ["bare"]);
        let at = |s: i64| {
            t0.checked_add(jiff::SignedDuration::from_secs(s))
                .unwrap_or(t0)
        };
        assert!(deleted(&ev.plan(&nodes, &pods[1..], at(299))).is_empty());
        assert_eq!(deleted(&ev.plan(&nodes, &pods[1..], at(300))), ["web"]);
        // The clock restarts once the taint is gone.
        let healed = [node("dead", json!([])), node("fine", json!([]))];
        assert!(ev.plan(&healed, &pods[1..], at(301)).is_empty());
        assert!(deleted(&ev.plan(&nodes, &pods[1..], at(302))).is_empty());
        assert_eq!(deleted(&ev.plan(&nodes, &pods[1..], at(602))), ["web"]);
    }

    #[test]
    fn smallest_used_toleration_wins() {
        let taints: Vec<Taint> = serde_json::from_value(json!([
            {"key": "a", "effect": "NoExecute"}, {"key": "b", "effect": "NoExecute"}]))
        .unwrap_or_default();
        let tols: Vec<Toleration> = serde_json::from_value(json!([
            {"key": "a", "operator": "Exists", "tolerationSeconds": 30},
            {"key": "b", "operator": "Exists", "tolerationSeconds": 10},
            {"key": "c", "operator": "Exists", "tolerationSeconds": 1}]))
        .unwrap_or_default();
        assert_eq!(
            toleration_time(&tols, &taints),
            Some(Duration::from_secs(10))
        );
        assert_eq!(toleration_time(&tols[..1], &taints), Some(Duration::ZERO));
        assert_eq!(toleration_time(&[], &[]), None);
    }
}
