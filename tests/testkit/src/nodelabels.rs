//! What a kubelet may do with its own Node's labels, for the fake kubelet's flag check and
//! the fake api-server's NodeRestriction; which keys those are is
//! [`kubeboot::nodelabels`] (upstream `k8s.io/kubelet/pkg/apis/well_known_labels.go`).
//!
//! Upstream: `cmd/kubelet/app/options/options.go` (`ValidateKubeletFlags`: since 1.16 a kubelet
//! started with `--node-labels` in the `kubernetes.io` or `k8s.io` namespaces outside that
//! set refuses to start); `plugin/pkg/admission/noderestriction/admission.go`
//! (`getForbiddenLabels`: the same keys plus `node-restriction.kubernetes.io` may not be
//! added, changed or removed by a node). This is why `node-role.kubernetes.io/control-plane`
//! can only come from an administrator (kubeadm's mark-control-plane, or `kubeboot start`).

use std::collections::{BTreeMap, BTreeSet};

use kubeboot::nodelabels::{
    KUBELET_LABEL_NAMESPACES, KUBELET_LABELS, in_namespace, is_kubelet_label, is_kubernetes_label,
    namespace,
};

/// `LabelNamespaceNodeRestriction`: labels only an administrator may set, by design.
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";

/// `getForbiddenLabels`: of the keys a node's write adds, changes or removes, those a
/// node may not touch.
pub fn forbidden_for_node<'a>(modified: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    modified
        .into_iter()
        .filter(|k| {
            in_namespace(namespace(k), NODE_RESTRICTION_NAMESPACE)
                || (is_kubernetes_label(k) && !is_kubelet_label(k))
        })
        .map(str::to_string)
        .collect()
}

/// `getModifiedLabels`: keys whose presence or value differs between `a` and `b`.
pub fn modified<'a>(
    a: &'a BTreeMap<String, String>,
    b: &'a BTreeMap<String, String>,
) -> BTreeSet<&'a str> {
    let differs = |x: &'a BTreeMap<String, String>, y: &BTreeMap<String, String>| {
        x.iter()
            .filter(|(k, v)| y.get(*k) != Some(*v))
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
    };
    differs(a, b).into_iter().chain(differs(b, a)).collect()
}

/// `ValidateKubeletFlags` on `--node-labels`: the error text upstream's kubelet exits with.
pub fn validate_flag_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    let unknown: Vec<&str> = labels
        .keys()
        .map(String::as_str)
        .filter(|k| is_kubernetes_label(k) && !is_kubelet_label(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(format!(
        "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [{}]\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix ({}) or be in the specifically allowed set ({})",
        unknown.join(" "),
        KUBELET_LABEL_NAMESPACES.join(", "),
        KUBELET_LABELS.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_control_plane_role_is_not_a_kubelet_label() {
        // Through the product's rules, checked here against upstream's list.
        assert!(is_kubernetes_label("node-role.kubernetes.io/control-plane"));
        assert!(!is_kubelet_label("node-role.kubernetes.io/control-plane"));
        assert!(is_kubelet_label("kubernetes.io/hostname"));
        assert!(is_kubelet_label(
            "node.kubernetes.io/exclude-from-external-load-balancers"
        ));
        assert!(is_kubelet_label("a.kubelet.kubernetes.io/x"));
        assert!(!is_kubernetes_label("example.com/role"));
        assert!(!is_kubernetes_label("notkubernetes.io/x"));
        assert!(!is_kubernetes_label("plain"));
    }

    #[test]
    fn the_flag_check_names_every_unknown_label() {
        let ok = map(&[("kubernetes.io/hostname", "m1"), ("tier", "cp")]);
        assert!(validate_flag_labels(&ok).is_ok());
        let bad = map(&[
            ("node-role.kubernetes.io/control-plane", ""),
            ("x.k8s.io/y", "1"),
        ]);
        let e = validate_flag_labels(&bad).unwrap_err();
        assert!(
            e.starts_with("unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [node-role.kubernetes.io/control-plane x.k8s.io/y]"),
            "{e}"
        );
    }

    #[test]
    fn a_node_may_not_add_change_or_remove_a_role_label() {
        let old = map(&[
            ("node-role.kubernetes.io/control-plane", ""),
            ("kubernetes.io/hostname", "m1"),
        ]);
        let removed = map(&[("kubernetes.io/hostname", "m2")]);
        let m = modified(&removed, &old);
        assert_eq!(
            m.iter().copied().collect::<Vec<_>>(),
            [
                "kubernetes.io/hostname",
                "node-role.kubernetes.io/control-plane"
            ]
        );
        assert_eq!(
            forbidden_for_node(m).into_iter().collect::<Vec<_>>(),
            ["node-role.kubernetes.io/control-plane"]
        );
        let restricted = map(&[("node-restriction.kubernetes.io/pool", "a")]);
        assert_eq!(
            forbidden_for_node(modified(&restricted, &BTreeMap::new())).len(),
            1
        );
        assert!(forbidden_for_node(modified(&old, &old)).is_empty());
    }
}
