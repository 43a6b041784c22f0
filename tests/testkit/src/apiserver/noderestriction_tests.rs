use serde_json::json;

use super::*;

fn write_by(node: &str, resource: &str, subresource: &str) -> NodeWrite {
    NodeWrite {
        node: node.into(),
        attrs: Attributes {
            user: format!("system:node:{node}"),
            groups: vec!["system:nodes".into()],
            verb: "update".into(),
            resource_request: true,
            resource: resource.into(),
            subresource: subresource.into(),
            name: node.into(),
            ..Default::default()
        },
    }
}

#[test]
fn only_a_node_write_is_judged() {
    let a = Attributes {
        user: "admin".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    };
    assert!(NodeWrite::of(&a).is_none());
    let old = json!({"spec": {"taints": []}});
    let new = json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
    assert!(admit_update(None, &old, &new).is_ok());
}

#[test]
fn a_node_keeps_its_taints_and_role_labels() {
    let w = write_by("n1", "nodes", "status");
    let role = "node-role.kubernetes.io/control-plane";
    let old = json!({"metadata": {"labels": {role: "", "a": "1"}}, "spec": {}});
    let e = admit_update(
        Some(&w),
        &old,
        &json!({"metadata": {"labels": {"a": "1"}}, "spec": {}}),
    )
    .unwrap_err();
    assert_eq!(e.code, 403);
    assert!(
        e.message
            .ends_with(&format!("is not allowed to modify labels: {role}")),
        "{}",
        e.message
    );
    let tainted =
        json!({"metadata": {"labels": {role: "", "a": "1"}}, "spec": {"taints": [{"key": "x"}]}});
    let e = admit_update(Some(&w), &old, &tainted).unwrap_err();
    assert!(
        e.message
            .ends_with("node \"n1\" is not allowed to modify taints"),
        "{}",
        e.message
    );
    let own = json!({"metadata": {"labels": {role: "", "a": "2"}}, "spec": {}});
    assert!(admit_update(Some(&w), &old, &own).is_ok());
}

#[test]
fn pod_status_only_of_its_pods_and_never_labels() {
    let w = write_by("n1", "pods", "status");
    let mine = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"nodeName": "n1"}});
    let relabelled = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"nodeName": "n1"}});
    let e = admit_update(Some(&w), &mine, &relabelled).unwrap_err();
    assert!(
        e.message
            .ends_with("cannot update labels through pod status"),
        "{}",
        e.message
    );
    let theirs = json!({"metadata": {}, "spec": {"nodeName": "n2"}});
    let e = admit_update(Some(&w), &theirs, &theirs).unwrap_err();
    assert!(
        e.message
            .contains("can only update pod status for pods with spec.nodeName set to itself")
    );
    assert!(admit_update(Some(&w), &mine, &mine).is_ok());
}

#[test]
fn leases_are_the_nodes_own_in_the_lease_namespace() {
    let mut a = write_by("n1", "leases", "").attrs;
    a.namespace = "kube-node-lease".into();
    a.name = "n2".into();
    assert!(
        lease("n1", &a, &json!({}))
            .unwrap_err()
            .contains("same name")
    );
    a.name = "n1".into();
    assert!(lease("n1", &a, &json!({})).is_ok());
    a.namespace = "default".into();
    assert!(
        lease("n1", &a, &json!({}))
            .unwrap_err()
            .contains("\"kube-node-lease\" system namespace")
    );
}
