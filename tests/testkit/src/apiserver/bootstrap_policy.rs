//! The default ClusterRoles and ClusterRoleBindings kube-apiserver puts in etcd at
//! startup (the `rbac/bootstrap-roles` post-start hook), the subset of upstream's
//! `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go` (`ClusterRoles`,
//! `ClusterRoleBindings`) and `controller_policy.go` (`buildControllerRoles`) that the
//! components in these tests run as. Like the real reconciler they are created only
//! when missing, labelled `kubernetes.io/bootstrapping=rbac-defaults` and annotated
//! `rbac.authorization.kubernetes.io/autoupdate=true`; `/readyz` fails until done.
//!
//! Simplified: an existing role is never updated (upstream adds missing rules to roles
//! that keep the autoupdate annotation); the aggregated admin/edit/view roles, the
//! namespaced leader-locking Roles and roles for kinds the double does not serve
//! (kube-dns, CSI, certificates approvers…) are not seeded.

use serde_json::{Value, json};

use super::defaults::on_create;
use super::discovery;
use super::node_authz::node_rules;
use super::status::ApiResult;
use super::store::Store;

const RBAC: &str = "rbac.authorization.k8s.io";
const READ: &[&str] = &["get", "list", "watch"];

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
}

fn named(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": groups, "resources": resources, "resourceNames": names})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

/// `eventsRule()`.
fn events() -> Value {
    rule(
        &["create", "update", "patch"],
        &["", "events.k8s.io"],
        &["events"],
    )
}

fn meta(name: &str) -> Value {
    json!({"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({"apiVersion": format!("{RBAC}/v1"), "kind": "ClusterRole", "metadata": meta(name),
        "rules": rules})
}

fn binding(name: &str, role: &str, subjects: Vec<Value>) -> Value {
    json!({"apiVersion": format!("{RBAC}/v1"), "kind": "ClusterRoleBinding", "metadata": meta(name),
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects})
}

fn group(name: &str) -> Value {
    json!({"apiGroup": RBAC, "kind": "Group", "name": name})
}

fn user(name: &str) -> Value {
    json!({"apiGroup": RBAC, "kind": "User", "name": name})
}

fn sa(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "name": name, "namespace": "kube-system"})
}

/// `policy.go` `ClusterRoles()` (the seeded subset).
fn cluster_roles() -> Vec<Value> {
    let review = [
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
        ),
    ];
    let node: Vec<Value> = node_rules()
        .into_iter()
        .map(|r| json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources}))
        .collect();
    vec![
        cluster_role(
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                rule(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
        ),
        cluster_role("system:auth-delegator", review.to_vec()),
        cluster_role("system:node", node),
        cluster_role(
            "system:node-proxier",
            vec![
                rule(&["list", "watch"], &[""], &["services", "endpoints"]),
                rule(READ, &[""], &["nodes"]),
                events(),
                rule(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(READ, &[""], &["nodes"]),
                rule(&["proxy"], &[""], &["nodes"]),
                rule(
                    &["*"],
                    &[""],
                    &["nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-controller-manager",
            [
                vec![
                    events(),
                    rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                    named(
                        &["get", "update"],
                        &["coordination.k8s.io"],
                        &["leases"],
                        &["kube-controller-manager"],
                    ),
                    rule(&["create"], &[""], &["secrets", "serviceaccounts"]),
                    rule(&["delete"], &[""], &["secrets"]),
                    rule(
                        &["get"],
                        &[""],
                        &["configmaps", "namespaces", "secrets", "serviceaccounts"],
                    ),
                    rule(&["update"], &[""], &["secrets", "serviceaccounts"]),
                ],
                review.to_vec(),
                vec![
                    rule(&["list", "watch"], &["*"], &["*"]),
                    rule(&["create"], &[""], &["serviceaccounts/token"]),
                ],
            ]
            .concat(),
        ),
        cluster_role(
            "system:kube-scheduler",
            [
                vec![
                    events(),
                    rule(&["create"], &["coordination.k8s.io"], &["leases"]),
                    named(
                        &["get", "update"],
                        &["coordination.k8s.io"],
                        &["leases"],
                        &["kube-scheduler"],
                    ),
                    rule(READ, &[""], &["nodes"]),
                    rule(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                    rule(&["create"], &[""], &["pods/binding", "bindings"]),
                    rule(&["patch", "update"], &[""], &["pods/status"]),
                    rule(READ, &[""], &["services", "replicationcontrollers"]),
                    rule(READ, &["apps", "extensions"], &["replicasets"]),
                    rule(READ, &["apps"], &["statefulsets"]),
                    rule(READ, &["policy"], &["poddisruptionbudgets"]),
                    rule(
                        READ,
                        &[""],
                        &["persistentvolumeclaims", "persistentvolumes"],
                    ),
                ],
                review.to_vec(),
                vec![
                    rule(READ, &["storage.k8s.io"], &["csinodes"]),
                    rule(READ, &[""], &["namespaces"]),
                    rule(READ, &["storage.k8s.io"], &["csidrivers"]),
                    rule(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
                ],
            ]
            .concat(),
        ),
        cluster_role(
            "system:volume-scheduler",
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                rule(READ, &["storage.k8s.io"], &["storageclasses"]),
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
    ]
}

/// `controller_policy.go`: the roles of the controllers the fake controller-manager
/// runs, each `system:controller:<name>` and bound to `kube-system/<name>`.
fn controller_roles() -> Vec<(&'static str, Vec<Value>)> {
    const APPS: &[&str] = &["apps", "extensions"];
    vec![
        (
            "daemon-set-controller",
            vec![
                rule(READ, APPS, &["daemonsets"]),
                rule(&["update"], APPS, &["daemonsets/status"]),
                rule(&["update"], APPS, &["daemonsets/finalizers"]),
                rule(&["list", "watch"], &[""], &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                rule(&["create"], &[""], &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                events(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                rule(&["get", "list", "watch", "update"], APPS, &["deployments"]),
                rule(&["update"], APPS, &["deployments/status"]),
                rule(&["update"], APPS, &["deployments/finalizers"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    APPS,
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                rule(&["get", "list", "watch", "update"], APPS, &["replicasets"]),
                rule(&["update"], APPS, &["replicasets/status"]),
                rule(&["update"], APPS, &["replicasets/finalizers"]),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![rule(
                &["get", "list", "watch", "patch", "update", "delete"],
                &["*"],
                &["*"],
            )],
        ),
        (
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"], &[""], &["pods"]),
                rule(&["get", "list"], &[""], &["nodes"]),
                rule(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"], &[""], &["configmaps"]),
                events(),
            ],
        ),
        (
            // Since v1.29 the NoExecute eviction runs as its own controller.
            "taint-eviction-controller",
            vec![
                rule(&["patch"], &[""], &["pods/status"]),
                rule(&["list", "get", "delete"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "node-controller",
            vec![
                rule(
                    &["get", "list", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                rule(&["patch", "update"], &[""], &["nodes/status"]),
                rule(&["patch", "update"], &[""], &["pods/status"]),
                rule(&["list", "delete"], &[""], &["pods"]),
                events(),
            ],
        ),
    ]
}

/// Every object to seed, ClusterRoles first.
pub fn objects() -> Vec<Value> {
    let mut roles = cluster_roles();
    let mut bindings = vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            vec![group("system:masters")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            vec![group("system:authenticated")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![group("system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        binding("system:node", "system:node", vec![]),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![user("system:kube-proxy")],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![user("system:kube-controller-manager")],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
    ];
    for (name, rules) in controller_roles() {
        let full = format!("system:controller:{name}");
        roles.push(cluster_role(&full, rules));
        bindings.push(binding(&full, &full, vec![sa(name)]));
    }
    roles.extend(bindings);
    roles
}

/// Creates every missing object; `Ok` once all exist.
pub async fn ensure(store: &Store) -> ApiResult<()> {
    for obj in objects() {
        let plural = match obj["kind"].as_str() {
            Some("ClusterRole") => "clusterroles",
            _ => "clusterrolebindings",
        };
        let Some(res) = discovery::find(RBAC, "v1", plural, &[]) else {
            continue;
        };
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = format!("{}/{}/{name}", store.prefix, res.segment());
        if store.get(&key).await?.is_none() {
            store.create(&key, &on_create(res, obj)?).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binding_names_a_seeded_role() {
        let objs = objects();
        let roles: Vec<&str> = objs
            .iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        for b in objs.iter().filter(|o| o["kind"] == "ClusterRoleBinding") {
            let role = b["roleRef"]["name"].as_str().unwrap();
            assert!(roles.contains(&role), "{role}");
            assert_eq!(
                b["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
                "true"
            );
        }
        assert!(roles.contains(&"system:controller:replicaset-controller"));
    }
}
