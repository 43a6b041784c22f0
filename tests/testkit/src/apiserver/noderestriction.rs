//! The NodeRestriction admission plugin, for kubelets that authenticate as
//! `system:node:<name>` in `system:nodes` (the authorizer half is [`super::node_authz`]).
//!
//! Upstream: `plugin/pkg/admission/noderestriction/admission.go`, `Plugin.Admit`:
//! - pods (`admitPodCreate`): a node creates only mirror pods, bound to itself, with
//!   exactly one owner reference, to its own Node (`v1`, kind `Node`, its name and UID),
//!   `controller: true` and no `blockOwnerDeletion`; that reference no service account,
//!   secret, configmap, cluster trust bundle or PVC. It deletes, and writes the status
//!   of, only pods bound to itself (`admitPod`, `admitPodStatus`), never their labels
//!   through the status;
//! - nodes (`admitNode`): only its own Node; on create no label outside the kubelet's set
//!   (`getForbiddenLabels`, [`crate::nodelabels`]); on update no change to its taints and
//!   no label of that kind added, changed or removed;
//! - service-account tokens (`admitServiceAccount`): only bound to a pod (with its UID)
//!   that is scheduled on this node;
//! - leases (`admitLease`): only `kube-node-lease/<node>`.
//!
//! Checks that need the stored object (updates and patches) run in `write.rs` through
//! [`admit_update`] on the object as sent (a patch applied), before the strategy's
//! `PrepareForUpdate` resets what a status write may not change: upstream runs mutating
//! admission, this plugin included, in `UpdatedObject`, before `BeforeUpdate`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::authz::{Attributes, forbidden};
use super::node_authz::{node_identity, references_any};
use super::status::ApiError;
use super::store::Store;
use crate::nodelabels;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const NODE_LEASE_NS: &str = "kube-node-lease";

/// A write made by a node, kept for the checks that need the stored object.
#[derive(Debug, Clone)]
pub struct NodeWrite {
    pub node: String,
    pub attrs: Attributes,
}

impl NodeWrite {
    /// `Some` when the request comes from a node.
    pub fn of(a: &Attributes) -> Option<NodeWrite> {
        node_identity(a).map(|n| NodeWrite {
            node: n.to_string(),
            attrs: a.clone(),
        })
    }

    fn refuse(&self, why: String) -> ApiError {
        refuse(&self.attrs, why)
    }
}

/// `admission.NewForbidden`: `<resource> "<name>" is forbidden: <why>`.
fn refuse(a: &Attributes, why: String) -> ApiError {
    let mut e = forbidden(a, "");
    e.message = match a.name.as_str() {
        "" => format!("{} is forbidden: {why}", a.resource),
        n => format!("{} {n:?} is forbidden: {why}", a.resource),
    };
    e
}

fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn stored_key(store: &Store, segment: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{}/{segment}/{name}", store.prefix.trim_end_matches('/'))
    } else {
        format!(
            "{}{name}",
            kubeboot::registry::namespace_prefix(&store.prefix, segment, namespace)
        )
    }
}

/// What can be judged before the handler runs: creates from the request body, deletes
/// from the stored pod. `Ok` for non-node users.
pub async fn admit(store: &Store, a: &Attributes, body: &[u8]) -> Result<(), ApiError> {
    let Some(w) = NodeWrite::of(a) else {
        return Ok(());
    };
    if w.node.is_empty() {
        return Err(refuse(
            a,
            format!("could not determine node from user {:?}", a.user),
        ));
    }
    let verb = a.verb.as_str();
    if !matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    ) {
        return Ok(());
    }
    let node = w.node.as_str();
    let object: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "pods", "") if verb == "create" => mirror_pod(store, node, &object)
            .await
            .map_err(|m| w.refuse(m)),
        ("", "pods", "" | "eviction") if verb == "delete" || a.subresource == "eviction" => {
            let what = if verb == "delete" { "delete" } else { "evict" };
            bound_to(store, &w, "pods", &a.namespace, what).await
        }
        ("", "nodes", _) if verb == "create" => {
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            if name != node {
                return Err(w.refuse(format!(
                    "node {node:?} is not allowed to modify node {name:?}"
                )));
            }
            let set = labels(&object);
            let bad = nodelabels::forbidden_for_node(set.keys().map(String::as_str));
            if bad.is_empty() {
                Ok(())
            } else {
                Err(w.refuse(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    bad.into_iter().collect::<Vec<_>>().join(", ")
                )))
            }
        }
        ("", "nodes", _) if matches!(verb, "update" | "patch") && a.name != node => Err(w.refuse(
            format!("node {node:?} is not allowed to modify node {:?}", a.name),
        )),
        ("", "serviceaccounts", "token") if verb == "create" => {
            token_binding(store, node, &a.namespace, &object)
                .await
                .map_err(|m| w.refuse(m))
        }
        ("coordination.k8s.io", "leases", _) => lease(node, a, &object).map_err(|m| w.refuse(m)),
        _ => Ok(()),
    }
}

/// `admitPodCreate`.
async fn mirror_pod(store: &Store, node: &str, pod: &Value) -> Result<(), String> {
    if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_null() {
        return Err(format!(
            "pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    if pod["spec"]["nodeName"].as_str() != Some(node) {
        return Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let owner = match owners {
        [] => {
            return Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ));
        }
        [one] => one,
        _ => {
            return Err(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ));
        }
    };
    if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
        return Err(format!(
            "node {node:?} can only create pods with an owner reference set to itself"
        ));
    }
    if owner["controller"] != true {
        return Err(format!(
            "node {node:?} can only create pods with a controller owner reference set to itself"
        ));
    }
    if owner["blockOwnerDeletion"] == true {
        return Err(format!(
            "node {node:?} must not set blockOwnerDeletion on an owner reference"
        ));
    }
    let stored = store
        .get(&stored_key(store, "minions", "", node))
        .await
        .map_err(|e| format!("error looking up node {node} to verify uid: {}", e.message))?;
    let uid = stored.map(|s| s.object["metadata"]["uid"].clone());
    let owner_uid = owner["uid"].as_str().unwrap_or_default();
    if uid.as_ref().and_then(Value::as_str) != Some(owner_uid) {
        let expected = uid.as_ref().and_then(Value::as_str).unwrap_or_default();
        return Err(format!(
            "node {node} UID mismatch: expected {owner_uid} got {expected}"
        ));
    }
    if pod["spec"]["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    for (kind, what) in [("secrets", "secrets"), ("configmaps", "configmaps")] {
        if references_any(pod, kind) {
            return Err(format!(
                "node {node:?} can not create pods that reference {what}"
            ));
        }
    }
    let volumes = pod["spec"]["volumes"].as_array().into_iter().flatten();
    let sources = volumes
        .clone()
        .filter_map(|v| v["projected"]["sources"].as_array())
        .flatten();
    if sources.clone().any(|s| !s["clusterTrustBundle"].is_null()) {
        return Err(format!(
            "node {node:?} can not create pods that reference clustertrustbundles"
        ));
    }
    if volumes
        .clone()
        .any(|v| !v["persistentVolumeClaim"].is_null())
    {
        return Err(format!(
            "node {node:?} can not create pods that reference persistentvolumeclaims"
        ));
    }
    Ok(())
}

/// `admitPod` (delete) and `admitPodEviction`: only a pod bound to this node. A pod that
/// is not there is left to the handler's 404.
async fn bound_to(
    store: &Store,
    w: &NodeWrite,
    segment: &str,
    namespace: &str,
    what: &str,
) -> Result<(), ApiError> {
    let key = stored_key(store, segment, namespace, &w.attrs.name);
    let Some(s) = store.get(&key).await? else {
        return Ok(());
    };
    if s.object["spec"]["nodeName"].as_str() == Some(&w.node) {
        return Ok(());
    }
    let node = &w.node;
    Err(w.refuse(match what {
        "evict" => format!("node {node} can only evict pods with spec.nodeName set to itself"),
        _ => format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
    }))
}

/// `admitServiceAccount`: a TokenRequest bound to a pod of this node.
async fn token_binding(
    store: &Store,
    node: &str,
    namespace: &str,
    req: &Value,
) -> Result<(), String> {
    let r = &req["spec"]["boundObjectRef"];
    let name = r["name"].as_str().unwrap_or_default();
    if r.is_null() || r["apiVersion"] != "v1" || r["kind"] != "Pod" || name.is_empty() {
        return Err("node requested token not bound to a pod".into());
    }
    let uid = r["uid"].as_str().unwrap_or_default();
    if uid.is_empty() {
        return Err("node requested token with a pod binding without a uid".into());
    }
    let key = stored_key(store, "pods", namespace, name);
    let pod = match store.get(&key).await {
        Ok(Some(s)) => s.object,
        Ok(None) => return Err(format!("pods {name:?} not found")),
        Err(e) => return Err(e.message),
    };
    if pod["metadata"]["uid"].as_str() != Some(uid) {
        return Err(format!(
            "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
        ));
    }
    if pod["spec"]["nodeName"].as_str() != Some(node) {
        return Err("node requested token bound to a pod scheduled on a different node".into());
    }
    Ok(())
}

/// `admitLease`.
fn lease(node: &str, a: &Attributes, obj: &Value) -> Result<(), String> {
    if a.namespace != NODE_LEASE_NS {
        return Err(format!(
            "can only access leases in the {NODE_LEASE_NS:?} system namespace"
        ));
    }
    let name = if a.verb == "create" {
        obj["metadata"]["name"].as_str().unwrap_or_default()
    } else {
        a.name.as_str()
    };
    if name != node {
        return Err("can only access node lease with the same name as the requesting node".into());
    }
    Ok(())
}

/// The checks on an update or patch, given the stored object and the one about to be
/// stored: `admitNode` (taints, labels) and `admitPodStatus` (bound pod, labels).
pub fn admit_update(w: Option<&NodeWrite>, old: &Value, new: &Value) -> Result<(), ApiError> {
    let Some(w) = w else {
        return Ok(());
    };
    let node = &w.node;
    let a = &w.attrs;
    match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "nodes", _) => {
            if old["spec"]["taints"] != new["spec"]["taints"] {
                return Err(w.refuse(format!("node {node:?} is not allowed to modify taints")));
            }
            let (before, after) = (labels(old), labels(new));
            let bad = nodelabels::forbidden_for_node(nodelabels::modified(&after, &before));
            if !bad.is_empty() {
                let list = bad.into_iter().collect::<Vec<_>>().join(", ");
                return Err(w.refuse(format!("is not allowed to modify labels: {list}")));
            }
        }
        ("", "pods", "status") => {
            if old["spec"]["nodeName"].as_str() != Some(node) {
                return Err(w.refuse(format!(
                    "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                )));
            }
            if labels(old) != labels(new) {
                return Err(w.refuse(format!(
                    "node {node:?} cannot update labels through pod status"
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[path = "noderestriction_tests.rs"]
mod tests;
