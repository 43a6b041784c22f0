use super::*;
use serde_json::json;

fn node_attrs(
    verb: &str,
    group: &str,
    resource: &str,
    sub: &str,
    ns: &str,
    name: &str,
) -> Attributes {
    Attributes::resource_request(
        "system:node:n1",
        &["system:nodes", "system:authenticated"],
        [verb, group, resource, sub, ns, name],
    )
}

#[test]
fn node_identity_needs_group_and_prefix() {
    let mut a = node_attrs("get", "", "nodes", "", "", "n1");
    assert_eq!(node_identity(&a), Some("n1"));
    a.groups = vec![];
    assert_eq!(node_identity(&a), None);
    a.groups = vec!["system:nodes".into()];
    a.user = "kubelet".into();
    assert_eq!(node_identity(&a), None);
}

#[test]
fn leases_and_nodes_are_the_nodes_own() {
    let lease = |verb: &str, ns: &str, name: &str| {
        lease(
            "n1",
            &node_attrs(verb, "coordination.k8s.io", "leases", "", ns, name),
        )
    };
    assert_eq!(lease("update", "kube-node-lease", "n1").0, Decision::Allow);
    assert_eq!(lease("create", "kube-node-lease", "").0, Decision::Allow);
    assert_eq!(
        lease("update", "kube-node-lease", "n2").1,
        "can only access node lease with the same name as the requesting node"
    );
    assert_eq!(
        lease("get", "kube-system", "n1").1,
        r#"can only access leases in the "kube-node-lease" system namespace"#
    );
    assert_eq!(lease("list", "kube-node-lease", "").0, Decision::NoOpinion);
    let node = |verb: &str, sub: &str, name: &str| {
        node_object("n1", &node_attrs(verb, "", "nodes", sub, "", name))
    };
    assert_eq!(node("get", "", "n1").0, Decision::Allow);
    assert_eq!(node("patch", "status", "n1").0, Decision::Allow);
    assert_eq!(
        node("get", "", "n2").1,
        "node 'n1' cannot read 'n2', only its own Node object"
    );
    assert_eq!(
        node("list", "", "").1,
        "node 'n1' cannot read all nodes, only its own Node object"
    );
    assert_eq!(node("delete", "", "n1").0, Decision::NoOpinion);
}

#[test]
fn pods_reference_what_they_mount() {
    let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1",
        "serviceAccountName": "sa1",
        "imagePullSecrets": [{"name": "pull"}],
        "volumes": [{"name": "s", "secret": {"secretName": "vol-secret"}},
                    {"name": "c", "configMap": {"name": "vol-cm"}},
                    {"name": "t", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt"}}]}}],
        "containers": [{"name": "c", "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
            "envFrom": [{"configMapRef": {"name": "env-cm"}}]}]}});
    for s in ["pull", "vol-secret", "env-secret"] {
        assert!(references(&pod, "secrets", s), "{s}");
    }
    for c in ["vol-cm", "kube-root-ca.crt", "env-cm"] {
        assert!(references(&pod, "configmaps", c), "{c}");
    }
    assert!(!references(&pod, "secrets", "vol-cm"));
    assert!(references(&pod, "serviceaccounts", "sa1"));
    assert!(!references(&pod, "serviceaccounts", "default"));
    let bare = json!({"spec": {}});
    assert!(references(&bare, "serviceaccounts", "default"));
}

#[test]
fn pods_are_listed_only_by_node() {
    assert!(selects_node("spec.nodeName=n1", "n1"));
    assert!(selects_node("metadata.namespace=a,spec.nodeName==n1", "n1"));
    assert!(!selects_node("spec.nodeName=n2", "n1"));
    assert!(!selects_node("spec.nodeName!=n1", "n1"));
    assert!(!selects_node("", "n1"));
}

#[test]
fn static_rules_cover_events_and_reviews() {
    let allowed = |a: &Attributes| node_rules().iter().any(|r| rule_allows(a, r));
    assert!(allowed(&node_attrs("create", "", "events", "", "a", "")));
    assert!(allowed(&node_attrs(
        "create",
        "authentication.k8s.io",
        "tokenreviews",
        "",
        "",
        ""
    )));
    assert!(allowed(&node_attrs(
        "create",
        "authorization.k8s.io",
        "subjectaccessreviews",
        "",
        "",
        ""
    )));
    assert!(!allowed(&node_attrs("delete", "", "events", "", "a", "e")));
    assert!(!allowed(&node_attrs(
        "create",
        "apps",
        "deployments",
        "",
        "a",
        ""
    )));
}
