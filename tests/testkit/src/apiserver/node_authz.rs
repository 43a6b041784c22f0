//! The Node authorizer and the NodeRestriction admission plugin, for kubelets that
//! authenticate as `system:node:<name>` in group `system:nodes`.
//!
//! Authorizer: upstream's `plugin/pkg/auth/authorizer/node/node_authorizer.go`
//! (`NodeAuthorizer.Authorize` with `AuthorizeNodeWithSelectors`, on by default since
//! 1.32): secrets, configmaps and service-account tokens only for objects a pod bound to
//! the node references; leases only `kube-node-lease/<node>`; its own Node only; pods
//! listed only with `spec.nodeName=<node>`; everything else against the static
//! `bootstrappolicy.NodeRules()`. Upstream keeps a graph fed by informers; the double
//! answers the same question by reading the namespace's pods from etcd per request.
//!
//! NodeRestriction, the admission half, is [`super::noderestriction`].

use serde_json::Value;

use super::authz::{Attributes, Decision};
use super::rbac::{Rule, rule_allows};
use super::store::Store;

const NODES_GROUP: &str = "system:nodes";
const NODE_PREFIX: &str = "system:node:";
const NODE_LEASE_NS: &str = "kube-node-lease";

/// `NodeIdentity`: the node name, if the user is a node (`Some("")` for a node user
/// without a name).
pub fn node_identity(a: &Attributes) -> Option<&str> {
    if !a.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    a.user.strip_prefix(NODE_PREFIX)
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Rule {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
    Rule {
        verbs: v(verbs),
        api_groups: v(groups),
        resources: v(resources),
        ..Default::default()
    }
}

/// `bootstrappolicy.NodeRules()`, the kinds the double serves and the review APIs.
pub fn node_rules() -> Vec<Rule> {
    const READ: &[&str] = &["get", "list", "watch"];
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["update", "patch"], &[""], &["nodes/status"]),
        rule(&["update", "patch"], &[""], &["nodes"]),
        rule(&["create", "update", "patch"], &[""], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["update", "patch"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(READ, &[""], &["secrets", "configmaps"]),
        rule(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        rule(&["get"], &[""], &["endpoints"]),
        rule(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        rule(
            &["get", "create", "update", "patch", "delete"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
    ]
}

fn no(why: impl Into<String>) -> (Decision, String) {
    (Decision::NoOpinion, why.into())
}

const ALLOW: (Decision, String) = (Decision::Allow, String::new());

/// `NodeAuthorizer.Authorize`.
pub async fn authorize(store: &Store, a: &Attributes) -> (Decision, String) {
    let Some(node) = node_identity(a) else {
        return (Decision::NoOpinion, String::new());
    };
    if node.is_empty() {
        return no(format!("unknown node for user {:?}", a.user));
    }
    if a.resource_request {
        match (a.api_group.as_str(), a.resource.as_str()) {
            ("", kind @ ("secrets" | "configmaps")) => {
                return read_namespaced(store, node, kind, a).await;
            }
            ("", "serviceaccounts") => return create_token(store, node, a).await,
            ("coordination.k8s.io", "leases") => return lease(node, a),
            ("", "nodes") => return node_object(node, a),
            ("", "pods") => return pod(store, node, a).await,
            _ => {}
        }
    }
    if node_rules().iter().any(|r| rule_allows(a, r)) {
        ALLOW
    } else {
        no("")
    }
}

async fn read_namespaced(
    store: &Store,
    node: &str,
    kind: &str,
    a: &Attributes,
) -> (Decision, String) {
    if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
        return no("can only read resources of this type");
    }
    if !a.subresource.is_empty() {
        return no("cannot read subresource");
    }
    if a.namespace.is_empty() {
        return no("can only read namespaced object of this type");
    }
    related(store, node, kind, a).await
}

/// `authorize`: the named object must be reachable from the node (`hasPathFrom`).
async fn related(store: &Store, node: &str, kind: &str, a: &Attributes) -> (Decision, String) {
    if a.name.is_empty() {
        return no("No Object name found");
    }
    let pods = bound_pods(store, node, &a.namespace).await;
    if pods.iter().any(|p| references(p, kind, &a.name)) {
        ALLOW
    } else {
        no(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

async fn create_token(store: &Store, node: &str, a: &Attributes) -> (Decision, String) {
    if a.verb != "create" || a.name.is_empty() {
        return no("can only create tokens for individual service accounts");
    }
    if a.subresource != "token" {
        return no("can only create token subresource of serviceaccount");
    }
    related(store, node, "serviceaccounts", a).await
}

fn lease(node: &str, a: &Attributes) -> (Decision, String) {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no("can only get, create, update, patch, or delete a node lease");
    }
    if a.namespace != NODE_LEASE_NS {
        return no(format!(
            "can only access leases in the {NODE_LEASE_NS:?} system namespace"
        ));
    }
    if a.verb != "create" && a.name != node {
        return no("can only access node lease with the same name as the requesting node");
    }
    ALLOW
}

/// `authorizeNode`.
fn node_object(node: &str, a: &Attributes) -> (Decision, String) {
    match (a.subresource.as_str(), a.verb.as_str()) {
        ("", "create" | "update" | "patch") | ("status", "update" | "patch") => ALLOW,
        ("", "get" | "list" | "watch") if a.name == node => ALLOW,
        ("", "get" | "list" | "watch") if a.name.is_empty() => no(format!(
            "node '{node}' cannot read all nodes, only its own Node object"
        )),
        ("", "get" | "list" | "watch") => no(format!(
            "node '{node}' cannot read '{}', only its own Node object",
            a.name
        )),
        _ => no(""),
    }
}

/// `authorizePod`.
async fn pod(store: &Store, node: &str, a: &Attributes) -> (Decision, String) {
    match (a.subresource.as_str(), a.verb.as_str()) {
        ("", "get") => related(store, node, "pods", a).await,
        ("", "list" | "watch") => {
            if selects_node(&a.field_selector, node) {
                ALLOW
            } else if !a.name.is_empty() {
                related(store, node, "pods", a).await
            } else {
                no("can only list/watch pods with spec.nodeName field selector")
            }
        }
        ("", "create" | "delete") | ("status", "update" | "patch") | ("eviction", "create") => {
            ALLOW
        }
        _ => no(""),
    }
}

/// Whether a field selector requires `spec.nodeName` to equal `node`.
fn selects_node(selector: &str, node: &str) -> bool {
    selector.split(',').any(|t| {
        let t = t.trim();
        t == format!("spec.nodeName={node}") || t == format!("spec.nodeName=={node}")
    })
}

/// The pods of `namespace` bound to `node`.
async fn bound_pods(store: &Store, node: &str, namespace: &str) -> Vec<Value> {
    let prefix = kubeboot::registry::namespace_prefix(&store.prefix, "pods", namespace);
    match store.list(&prefix, None, 0).await {
        Ok((items, _)) => items
            .into_iter()
            .map(|s| s.object)
            .filter(|p| p["spec"]["nodeName"].as_str() == Some(node))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether a pod references the object (the graph's pod → secret/configmap/SA edges).
pub fn references(pod: &Value, kind: &str, name: &str) -> bool {
    match kind {
        "pods" => pod["metadata"]["name"].as_str() == Some(name),
        "serviceaccounts" => match pod["spec"]["serviceAccountName"].as_str() {
            Some(sa) if !sa.is_empty() => sa == name,
            _ => name == "default",
        },
        _ => references_where(pod, kind, |v| v.as_str() == Some(name)),
    }
}

/// Whether a pod references any secret or configmap (`VisitPodSecretNames`,
/// `VisitPodConfigmapNames`).
pub fn references_any(pod: &Value, kind: &str) -> bool {
    references_where(pod, kind, |v| v.as_str().is_some_and(|s| !s.is_empty()))
}

fn references_where(pod: &Value, kind: &str, is: impl Fn(&Value) -> bool) -> bool {
    let spec = &pod["spec"];
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten();
    let volumes = spec["volumes"].as_array().into_iter().flatten();
    let projected = volumes
        .clone()
        .filter_map(|v| v["projected"]["sources"].as_array())
        .flatten();
    let env_refs = |key_ref: &str, from_ref: &str| {
        containers.clone().any(|c| {
            let env = c["env"].as_array().into_iter().flatten();
            let mut from = c["envFrom"].as_array().into_iter().flatten();
            env.clone().any(|e| is(&e["valueFrom"][key_ref]["name"]))
                || from.any(|e| is(&e[from_ref]["name"]))
        })
    };
    match kind {
        "secrets" => {
            spec["imagePullSecrets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| is(&s["name"]))
                || volumes.clone().any(|v| is(&v["secret"]["secretName"]))
                || projected.clone().any(|s| is(&s["secret"]["name"]))
                || env_refs("secretKeyRef", "secretRef")
        }
        "configmaps" => {
            volumes.clone().any(|v| is(&v["configMap"]["name"]))
                || projected.clone().any(|s| is(&s["configMap"]["name"]))
                || env_refs("configMapKeyRef", "configMapRef")
        }
        _ => false,
    }
}

#[cfg(test)]
#[path = "node_authz_tests.rs"]
mod tests;
