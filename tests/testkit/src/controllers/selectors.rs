//! Label and node selectors as Kubernetes evaluates them, shared by the controllers
//! (which pods a selector covers) and the scheduler (which nodes a pod may use). Pure.
//!
//! Semantics follow `k8s.io/apimachinery/pkg/labels` and
//! `k8s.io/component-helpers/scheduling/corev1/nodeaffinity`: `NotIn` and
//! `DoesNotExist` match a missing key; a nil `LabelSelector` matches nothing and an
//! empty one everything; a `NodeSelector` with no terms matches nothing, terms are ORed,
//! requirements inside a term ANDed, and an empty term matches nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

/// One requirement: `key op values`, as both selector kinds spell it.
pub fn requirement(labels: &Labels, key: &str, op: &str, values: &[String]) -> bool {
    let have = labels.get(key);
    match op {
        "In" => have.is_some_and(|v| values.contains(v)),
        "NotIn" => have.is_none_or(|v| !values.contains(v)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (
                have.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if op == "Gt" { have > want } else { have < want }
        }
        _ => false,
    }
}

/// A `metav1.LabelSelector` (matchLabels and matchExpressions, ANDed).
pub fn label_selector(sel: &LabelSelector, labels: &Labels) -> bool {
    let by_label = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expr = sel.match_expressions.iter().flatten().all(|e| {
        requirement(
            labels,
            &e.key,
            &e.operator,
            e.values.as_deref().unwrap_or(&[]),
        )
    });
    by_label && by_expr
}

/// `pod.spec.nodeSelector`: every pair must be a node label.
pub fn node_selector_map(want: Option<&Labels>, node: &Node) -> bool {
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    want.into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn field(node: &Node, r: &NodeSelectorRequirement) -> bool {
    // Only `metadata.name` is a supported field (nodeaffinity.go).
    if r.key != "metadata.name" {
        return false;
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let fields = Labels::from([(r.key.clone(), name)]);
    matches!(r.operator.as_str(), "In" | "NotIn")
        && requirement(
            &fields,
            &r.key,
            &r.operator,
            r.values.as_deref().unwrap_or(&[]),
        )
}

fn term(node: &Node, t: &NodeSelectorTerm) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let empty = Labels::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    exprs.iter().all(|r| {
        requirement(
            labels,
            &r.key,
            &r.operator,
            r.values.as_deref().unwrap_or(&[]),
        )
    }) && fields.iter().all(|r| field(node, r))
}

/// A `NodeSelector` (required node affinity): any term matches.
pub fn node_selector(sel: &NodeSelector, node: &Node) -> bool {
    sel.node_selector_terms.iter().any(|t| term(node, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap_or_default()
    }

    fn sel(v: serde_json::Value) -> NodeSelector {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn requirements() {
        let l = Labels::from([("a".into(), "1".into()), ("n".into(), "5".into())]);
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            ("a", "In", v(&["1", "2"]), true),
            ("a", "In", v(&["2"]), false),
            ("b", "In", v(&["1"]), false),
            ("a", "NotIn", v(&["1"]), false),
            ("b", "NotIn", v(&["1"]), true),
            ("a", "Exists", v(&[]), true),
            ("b", "Exists", v(&[]), false),
            ("b", "DoesNotExist", v(&[]), true),
            ("a", "DoesNotExist", v(&[]), false),
            ("n", "Gt", v(&["4"]), true),
            ("n", "Lt", v(&["4"]), false),
            ("a", "Bogus", v(&["1"]), false),
        ];
        for (k, op, vals, want) in cases {
            assert_eq!(requirement(&l, k, op, &vals), want, "{k} {op} {vals:?}");
        }
    }

    #[test]
    fn label_selectors() {
        let l = Labels::from([("app".into(), "x".into())]);
        let s = |v| serde_json::from_value::<LabelSelector>(v).unwrap_or_default();
        assert!(label_selector(&s(json!({})), &l));
        assert!(label_selector(&s(json!({"matchLabels": {"app": "x"}})), &l));
        assert!(!label_selector(
            &s(json!({"matchLabels": {"app": "y"}})),
            &l
        ));
        let e = json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]});
        assert!(!label_selector(&s(e), &l));
    }

    #[test]
    fn node_selector_terms_are_ored_and_requirements_anded() {
        let n = node("m1", json!({"role": "master", "zone": "a"}));
        let both = sel(json!({"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "role", "operator": "In", "values": ["master"]},
            {"key": "zone", "operator": "In", "values": ["b"]}]}]}));
        assert!(!node_selector(&both, &n));
        let either = sel(json!({"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
            {"matchExpressions": [{"key": "role", "operator": "Exists"}]}]}));
        assert!(node_selector(&either, &n));
        assert!(!node_selector(&sel(json!({"nodeSelectorTerms": []})), &n));
        assert!(!node_selector(&sel(json!({"nodeSelectorTerms": [{}]})), &n));
    }

    #[test]
    fn match_fields_name_only() {
        let n = node("m1", json!({}));
        let by_name = |op: &str, key: &str| {
            sel(json!({"nodeSelectorTerms": [{"matchFields": [
                {"key": key, "operator": op, "values": ["m1"]}]}]}))
        };
        assert!(node_selector(&by_name("In", "metadata.name"), &n));
        assert!(!node_selector(&by_name("NotIn", "metadata.name"), &n));
        assert!(!node_selector(&by_name("In", "metadata.uid"), &n));
        assert!(!node_selector(&by_name("Exists", "metadata.name"), &n));
    }

    #[test]
    fn node_selector_map_needs_every_pair() {
        let n = node("m1", json!({"role": "master", "os": "linux"}));
        let want = Labels::from([("role".into(), "master".into())]);
        assert!(node_selector_map(Some(&want), &n));
        assert!(node_selector_map(None, &n));
        let other = Labels::from([("role".into(), "worker".into())]);
        assert!(!node_selector_map(Some(&other), &n));
    }
}
