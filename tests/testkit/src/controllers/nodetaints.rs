//! The taints the node lifecycle controller keeps on a Node
//! (`pkg/controller/nodelifecycle/node_lifecycle_controller.go`): the `NoSchedule` ones
//! follow the current conditions (`doNoScheduleTaintingPass` with
//! `nodeConditionToTaintKeyStatusMap`, plus `unschedulable` for `spec.unschedulable`);
//! the `NoExecute` `not-ready`/`unreachable` one is what `processTaintBaseEviction`
//! decided (`markNodeForTainting`, `markNodeAsReachable`). Every other taint is left as
//! it is, in order; added ones carry `timeAdded`, as `SwapNodeControllerTaint` sets it.
//! Pure.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::nodelifecycle::condition;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const UNSCHEDULABLE: &str = super::fit::UNSCHEDULABLE;

/// `nodeConditionToTaintKeyStatusMap`: (condition, status) → taint key.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];

fn taint(key: &str, effect: &str, wall: Timestamp) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: Some(Time(wall)),
        value: None,
    }
}

/// The node's taints once the controller's own are as wanted: the managed `NoSchedule`
/// ones follow `conditions` (`doNoScheduleTaintingPass`), the `NoExecute` ones are
/// `no_execute` (`None`: leave them as they are). Others are kept, in order.
pub fn reconcile_taints(
    node: &Node,
    no_execute: Option<Option<&str>>,
    wall: Timestamp,
) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut want_ns: Vec<&str> = CONDITION_TAINTS
        .iter()
        .filter(|(c, st, _)| condition(node, c).is_some_and(|x| x.status == *st))
        .map(|(_, _, k)| *k)
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want_ns.push(UNSCHEDULABLE);
    }
    let managed_ns = |k: &str| k == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|t| t.2 == k);
    let managed_ne = |k: &str| k == NOT_READY || k == UNREACHABLE;
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| match t.effect.as_str() {
            "NoSchedule" if managed_ns(&t.key) => want_ns.contains(&t.key.as_str()),
            "NoExecute" if managed_ne(&t.key) => match no_execute {
                None => true,
                Some(want) => want == Some(t.key.as_str()),
            },
            _ => true,
        })
        .cloned()
        .collect();
    let has = |out: &[Taint], k: &str, e: &str| out.iter().any(|t| t.key == k && t.effect == e);
    for k in want_ns {
        if !has(&out, k, "NoSchedule") {
            out.push(taint(k, "NoSchedule", wall));
        }
    }
    if let Some(Some(k)) = no_execute
        && !has(&out, k, "NoExecute")
    {
        out.push(taint(k, "NoExecute", wall));
    }
    (out != current).then_some(out)
}
