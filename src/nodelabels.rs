//! Which node labels a kubelet may set on its own Node, and so which ones only an
//! administrator can.
//!
//! Since Kubernetes 1.16 a kubelet refuses to start with `--node-labels` in the
//! `kubernetes.io` or `k8s.io` namespaces outside a short allowed set, and the
//! NodeRestriction admission plugin refuses the same labels on its writes to its Node
//! (upstream `k8s.io/kubelet/pkg/apis/well_known_labels.go`, `IsKubeletLabel`). The
//! control-plane role, `node-role.kubernetes.io/control-plane`, is not in that set: a
//! control plane whose DaemonSets select it runs on a node only once somebody with
//! cluster-admin rights labelled the node (kubeadm's mark-control-plane phase; here
//! `kubeboot start`).

/// `kubeletLabels`: keys in the reserved namespaces a kubelet may still set.
pub const KUBELET_LABELS: [&str; 11] = [
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// `kubeletLabelNamespaces`: a kubelet may set any key in these (or their subdomains).
pub const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

/// The prefix of a label key (`""` for a key without one).
pub fn namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

/// `ns` is `domain` or a subdomain of it.
pub fn in_namespace(ns: &str, domain: &str) -> bool {
    ns == domain || ns.strip_suffix(domain).is_some_and(|p| p.ends_with('.'))
}

/// A key in the `kubernetes.io` or `k8s.io` namespaces (or a subdomain of either).
pub fn is_kubernetes_label(key: &str) -> bool {
    let ns = namespace(key);
    in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io")
}

/// `IsKubeletLabel`.
pub fn is_kubelet_label(key: &str) -> bool {
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|d| in_namespace(namespace(key), d))
}

/// A label no kubelet can put on its own Node: an administrator must.
pub fn admin_only(key: &str) -> bool {
    is_kubernetes_label(key) && !is_kubelet_label(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_is_admin_only_the_host_name_is_not() {
        assert!(admin_only("node-role.kubernetes.io/control-plane"));
        assert!(admin_only("node-role.kubernetes.io/master"));
        assert!(!admin_only("kubernetes.io/hostname"));
        assert!(!admin_only(
            "node.kubernetes.io/exclude-from-external-load-balancers"
        ));
        assert!(!admin_only("example.com/role"));
        assert!(!admin_only("notkubernetes.io/x"));
        assert!(admin_only("x.k8s.io/y"));
    }
}
