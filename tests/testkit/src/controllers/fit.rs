//! Whether a pod may run on a node: taints and tolerations, `nodeSelector`, required
//! node affinity. The one place both the DaemonSet controller (which places
//! its own pods) and the scheduler decide this, so the two can never disagree. Pure.
//!
//! Toleration matching is `Toleration.ToleratesTaint` from `k8s.io/api/core/v1`; only
//! `NoSchedule` and `NoExecute` taints keep a pod off a node (`PreferNoSchedule` is a
//! preference and is ignored). A node with `spec.unschedulable` carries the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint, as the real node lifecycle
//! controller adds it. Not checked: resources, host ports, volumes, pod (anti-)affinity
//! as a requirement, the `Lt`/`Gt` toleration operators.

use k8s_openapi::api::core::v1::{Node, PodSpec, Taint, Toleration};

use super::selectors;

pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Why a node does not fit; the scheduler reports these like kube-scheduler's plugins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfit {
    Selector,
    Taint(String),
}

impl Unfit {
    /// The phrase kube-scheduler uses in `0/N nodes are available: ...`.
    pub fn phrase(&self) -> String {
        match self {
            Unfit::Selector => "node(s) didn't match Pod's node affinity/selector".into(),
            Unfit::Taint(t) => format!("node(s) had untolerated taint {{{t}}}"),
        }
    }
}

/// `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key with
/// `Exists` matches every taint, and the operator defaults to `Equal`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The node's taints, plus the one `spec.unschedulable` implies.
pub fn node_taints(node: &Node) -> Vec<Taint> {
    let spec = node.spec.as_ref();
    let mut taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false)
        && !taints.iter().any(|t| t.key == UNSCHEDULABLE)
    {
        taints.push(Taint {
            key: UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
    }
    taints
}

/// The first `NoSchedule`/`NoExecute` taint no toleration covers, as `key: value`
/// (kube-scheduler's `{%s: %s}`, so an empty value leaves `key: `).
pub fn untolerated(tolerations: &[Toleration], taints: &[Taint]) -> Option<String> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
        .map(|t| format!("{}: {}", t.key, t.value.as_deref().unwrap_or("")))
}

/// Condition `Ready=True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `nodeSelector` and required node affinity.
pub fn selects(spec: &PodSpec, node: &Node) -> bool {
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selectors::node_selector_map(spec.node_selector.as_ref(), node)
        && required.is_none_or(|r| selectors::node_selector(r, node))
}

/// Whether `spec` may be placed on `node`: its selector and required affinity, and
/// every `NoSchedule`/`NoExecute` taint tolerated (kube-scheduler's NodeAffinity and
/// TaintToleration filters, `pkg/scheduler/framework/plugins/tainttoleration`). Node
/// readiness is not checked: as upstream, a node that is not Ready keeps pods off
/// through the taints the node lifecycle controller puts on it.
///
/// The first failing filter is the reason, in kube-scheduler's default plugin order
/// (`pkg/scheduler/apis/config/v1/default_plugins.go`): TaintToleration before
/// NodeAffinity.
pub fn check(spec: &PodSpec, node: &Node) -> Result<(), Unfit> {
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    if let Some(t) = untolerated(tolerations, &node_taints(node)) {
        return Err(Unfit::Taint(t));
    }
    if !selects(spec, node) {
        return Err(Unfit::Selector);
    }
    Ok(())
}

/// Whether a pod of `spec` already on `node` may stay (the DaemonSet controller's
/// `shouldContinueRunning` in `NodeShouldRunDaemonPod`): its selector matches and every
/// `NoExecute` taint is tolerated; `NoSchedule` taints only keep new pods away.
pub fn may_stay(spec: &PodSpec, node: &Node) -> bool {
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let no_execute: Vec<Taint> = node_taints(node)
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect();
    selects(spec, node) && untolerated(tolerations, &no_execute).is_none()
}

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// The tolerations the DaemonSet controller adds to every daemon pod
/// (`AddOrUpdateDaemonPodTolerations` in `pkg/controller/daemon/util`), so daemons run
/// on not-ready, unreachable, pressured and cordoned nodes.
pub fn with_daemon_tolerations(spec: &mut PodSpec) {
    let mut add = vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists(UNSCHEDULABLE, "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        add.push(exists(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in add {
        if !list
            .iter()
            .any(|have| have.key == t.key && have.effect == t.effect)
        {
            list.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn tol(v: Value) -> Toleration {
        serde_json::from_value(v).unwrap_or_default()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn toleration_matching() {
        let t = taint("k", "v", "NoSchedule");
        let cases = [
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (json!({"key": "k", "value": "v"}), true),
            (json!({"key": "k", "value": "w"}), false),
            (json!({"key": "k", "operator": "Exists"}), true),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "", "operator": "Exists", "effect": ""}), true),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "k", "operator": "Lt", "value": "v"}), false),
        ];
        for (v, want) in cases {
            assert_eq!(tolerates(&tol(v.clone()), &t), want, "{v}");
        }
        let no_value = taint("k", "", "NoSchedule");
        assert!(tolerates(&tol(json!({"key": "k"})), &no_value));
    }

    #[test]
    fn only_hard_effects_keep_pods_off() {
        let taints = [
            taint("soft", "", "PreferNoSchedule"),
            taint("a", "1", "NoExecute"),
        ];
        assert_eq!(untolerated(&[], &taints).as_deref(), Some("a: 1"));
        let all = [tol(json!({"operator": "Exists"}))];
        assert_eq!(untolerated(&all, &taints), None);
    }

    #[test]
    fn check_reports_the_first_reason() {
        let n = node(
            json!({"metadata": {"name": "n", "labels": {"role": "master"}},
            "spec": {"taints": [{"key": "role", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        let spec = |v: Value| serde_json::from_value::<PodSpec>(v).unwrap_or_default();
        let sel = json!({"containers": [], "nodeSelector": {"role": "master"}});
        assert_eq!(
            check(&spec(sel.clone()), &n),
            Err(Unfit::Taint("role: ".into()))
        );
        let mut ok = sel;
        ok["tolerations"] = json!([{"key": "role", "operator": "Exists"}]);
        assert_eq!(check(&spec(ok), &n), Ok(()));
        // TaintToleration runs before NodeAffinity: an untolerated taint is the reason.
        let mut wrong = json!({"containers": [], "nodeSelector": {"role": "worker"}});
        assert_eq!(
            check(&spec(wrong.clone()), &n),
            Err(Unfit::Taint("role: ".into()))
        );
        wrong["tolerations"] = json!([{"key": "role", "operator": "Exists"}]);
        assert_eq!(check(&spec(wrong), &n), Err(Unfit::Selector));
        // Readiness itself is no filter: only the lifecycle controller's taints are.
        let not_ready = node(json!({"metadata": {"name": "n"}}));
        assert_eq!(check(&spec(json!({"containers": []})), &not_ready), Ok(()));
        let unreachable = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}));
        assert_eq!(
            check(&spec(json!({"containers": []})), &unreachable),
            Err(Unfit::Taint("node.kubernetes.io/unreachable: ".into()))
        );
    }

    #[test]
    fn cordoned_nodes_are_tainted_and_daemons_tolerate_it() {
        let n = node(json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}));
        let mut spec = PodSpec::default();
        assert_eq!(
            check(&spec, &n),
            Err(Unfit::Taint(format!("{UNSCHEDULABLE}: ")))
        );
        with_daemon_tolerations(&mut spec);
        with_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(6));
        assert_eq!(check(&spec, &n), Ok(()));
    }

    #[test]
    fn daemons_stay_on_an_unreachable_node_but_are_not_placed_there() {
        let dead = node(json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]}}));
        let mut spec = PodSpec::default();
        assert!(!may_stay(&spec, &dead));
        with_daemon_tolerations(&mut spec);
        let tols = spec.tolerations.clone().unwrap_or_default();
        let unreachable = tols
            .iter()
            .find(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(unreachable.effect.as_deref(), Some("NoExecute"));
        assert_eq!(
            unreachable.toleration_seconds, None,
            "daemons tolerate it for ever"
        );
        assert!(may_stay(&spec, &dead));
        assert_eq!(
            check(&spec, &dead),
            Err(Unfit::Taint("node.kubernetes.io/unreachable: ".into()))
        );
    }
}
