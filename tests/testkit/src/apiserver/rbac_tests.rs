use super::*;
use serde_json::json;

fn rule(v: serde_json::Value) -> Rule {
    serde_json::from_value(v).unwrap()
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes::resource_request(
        "alice",
        &["dev", "system:authenticated"],
        [verb, group, resource, sub, ns, name],
    )
}

#[test]
fn rules_match_as_evaluation_helpers_do() {
    let r = rule(json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}));
    assert!(rule_allows(&res("get", "", "pods", "", "a", "p"), &r));
    assert!(!rule_allows(&res("list", "", "pods", "", "a", ""), &r));
    assert!(!rule_allows(&res("get", "apps", "pods", "", "a", "p"), &r));
    // A subresource is its own resource: "pods" does not grant "pods/status".
    assert!(!rule_allows(
        &res("get", "", "pods", "status", "a", "p"),
        &r
    ));
    let r = rule(json!({"verbs": ["update"], "apiGroups": [""], "resources": ["pods/status"]}));
    assert!(rule_allows(
        &res("update", "", "pods", "status", "a", "p"),
        &r
    ));
    assert!(!rule_allows(&res("update", "", "pods", "", "a", "p"), &r));
    let r = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/status"]}));
    assert!(rule_allows(
        &res("patch", "apps", "deployments", "status", "", "d"),
        &r
    ));
    assert!(!rule_allows(
        &res("patch", "apps", "deployments", "scale", "", "d"),
        &r
    ));
    assert!(!rule_allows(
        &res("patch", "apps", "deployments", "", "", "d"),
        &r
    ));
    let r = rule(
        json!({"verbs": ["get", "update"], "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"], "resourceNames": ["kube-scheduler"]}),
    );
    assert!(rule_allows(
        &res(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-system",
            "kube-scheduler"
        ),
        &r
    ));
    assert!(!rule_allows(
        &res(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-system",
            "other"
        ),
        &r
    ));
    // resourceNames never match a request without a name (list, create).
    assert!(!rule_allows(
        &res(
            "update",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-system",
            ""
        ),
        &r
    ));
    let r = rule(json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}));
    let path = |p: &str| Attributes {
        verb: "get".into(),
        path: p.into(),
        ..Default::default()
    };
    assert!(rule_allows(&path("/healthz"), &r));
    assert!(rule_allows(&path("/apis/apps/v1"), &r));
    assert!(!rule_allows(&path("/healthz/etcd"), &r));
    assert!(!rule_allows(&path("/api"), &r));
    // A resource rule never grants a non-resource path.
    let all = rule(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
    assert!(!rule_allows(&path("/healthz"), &all));
}

fn snapshot(v: serde_json::Value) -> Snapshot {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    Snapshot {
        cluster_roles: parse(list("clusterroles")),
        roles: parse(list("roles")),
        cluster_role_bindings: parse(list("clusterrolebindings")),
        role_bindings: parse(list("rolebindings")),
    }
}

#[test]
fn bindings_apply_to_users_groups_and_service_accounts() {
    let s = snapshot(json!({
        "clusterroles": [{"metadata": {"name": "reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}],
        "roles": [{"metadata": {"name": "cm", "namespace": "a"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]}],
        "clusterrolebindings": [
            {"metadata": {"name": "g"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
             "subjects": [{"kind": "Group", "name": "dev"}]},
            {"metadata": {"name": "broken"}, "roleRef": {"kind": "ClusterRole", "name": "gone"},
             "subjects": [{"kind": "User", "name": "alice"}]}],
        "rolebindings": [
            {"metadata": {"name": "sa", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "cm"},
             "subjects": [{"kind": "ServiceAccount", "name": "builder"}]},
            {"metadata": {"name": "c", "namespace": "b"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
             "subjects": [{"kind": "User", "name": "carol"}]}]
    }));
    let a = res("list", "", "pods", "", "", "");
    assert_eq!(authorize(&s, &a).0, Decision::Allow);
    let mut a = res("get", "", "configmaps", "", "a", "x");
    let (d, why) = authorize(&s, &a);
    assert_eq!(d, Decision::NoOpinion);
    assert_eq!(
        why,
        r#"RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found"#
    );
    a.user = "system:serviceaccount:a:builder".into();
    a.groups = vec![];
    assert_eq!(authorize(&s, &a).0, Decision::Allow);
    a.namespace = "b".into();
    assert_eq!(authorize(&s, &a).0, Decision::NoOpinion);
    a.user = "system:serviceaccount:b:builder".into();
    assert_eq!(authorize(&s, &a).0, Decision::NoOpinion);
    // A RoleBinding to a ClusterRole grants it in its namespace only.
    let mut c = res("get", "", "pods", "", "b", "p");
    c.user = "carol".into();
    c.groups = vec![];
    assert_eq!(authorize(&s, &c).0, Decision::Allow);
    c.namespace = "a".into();
    assert_eq!(authorize(&s, &c).0, Decision::NoOpinion);
}
