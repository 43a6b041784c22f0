//! Marks this node as a control-plane node before `start` waits for the self-hosted pods.
//!
//! The control plane's DaemonSets and Deployments select their nodes by labels such as
//! `node-role.kubernetes.io/control-plane`, and no kubelet can set those on itself: the
//! kubelet refuses them in `--node-labels` and NodeRestriction refuses them on its writes
//! ([`crate::nodelabels`]). bootkube's kubelets carried `--node-labels=…/master`, which
//! Kubernetes 1.16 ended; on a fresh cluster nothing would ever be placed on the node,
//! and the pivot would time out. So `start`, holding the admin kubeconfig, sets on its own
//! node (`--node-name`) every such label the required components select and the node
//! lacks, as kubeadm's mark-control-plane phase does. Labels are only added, never
//! changed or removed, so a recovered cluster's nodes, which keep theirs in etcd, are
//! left alone. Other masters are labelled by whoever adds them (docs/provisioning.md).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, PodTemplateSpec};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::observe::Required;
use crate::nodelabels::admin_only;
use crate::source::error_chain;

/// What a required component's pod template selects that only an administrator can set.
pub fn admin_selectors<'a>(
    required: &[Required],
    templates: impl IntoIterator<Item = (&'a str, &'a str, &'a PodTemplateSpec)>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (ns, name, template) in templates {
        if !required.iter().any(|r| r.namespace == ns && r.name == name) {
            continue;
        }
        let selector = template
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref());
        for (k, v) in selector.into_iter().flatten() {
            if admin_only(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Of `wanted`, the labels `node` does not carry at all (a key it carries with another
/// value is somebody's decision, kept).
pub fn missing(node: &Node, wanted: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let have = node.metadata.labels.as_ref();
    wanted
        .iter()
        .filter(|(k, _)| !have.is_some_and(|h| h.contains_key(*k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The labels the required components' DaemonSets and Deployments select, as stored.
pub async fn wanted(
    client: &kube::Client,
    required: &[Required],
    namespaces: &[String],
) -> Result<BTreeMap<String, String>, String> {
    let mut daemonsets = Vec::new();
    let mut deployments = Vec::new();
    for ns in namespaces {
        let ds: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
        let list = ds.list(&Default::default()).await;
        daemonsets.extend(list.map_err(|e| format!("list daemonsets: {}", error_chain(&e)))?);
        let dp: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let list = dp.list(&Default::default()).await;
        deployments.extend(list.map_err(|e| format!("list deployments: {}", error_chain(&e)))?);
    }
    let meta = |m: &'_ kube::api::ObjectMeta| {
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };
    let templates: Vec<(String, String, &PodTemplateSpec)> = daemonsets
        .iter()
        .filter_map(|d| Some((meta(&d.metadata), &d.spec.as_ref()?.template)))
        .chain(
            deployments
                .iter()
                .filter_map(|d| Some((meta(&d.metadata), &d.spec.as_ref()?.template))),
        )
        .map(|((ns, name), t)| (ns, name, t))
        .collect();
    Ok(admin_selectors(
        required,
        templates
            .iter()
            .map(|(ns, name, t)| (ns.as_str(), name.as_str(), *t)),
    ))
}

/// Adds `labels` to node `name` (a merge patch of those keys only). `Err` names the node
/// and what failed; a node the kubelet has not registered yet is an `Err` to wait on.
pub async fn label(
    client: &kube::Client,
    name: &str,
    wanted: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = match nodes.get_opt(name).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(format!(
                "node {name:?} is not registered (is --node-name the kubelet's node name?)"
            ));
        }
        Err(e) => return Err(format!("get node {name}: {}", error_chain(&e))),
    };
    let add = missing(&node, wanted);
    if add.is_empty() {
        return Ok(add);
    }
    let patch = Patch::Merge(json!({"metadata": {"labels": add}}));
    nodes
        .patch(name, &PatchParams::default(), &patch)
        .await
        .map_err(|e| format!("label node {name}: {}", error_chain(&e)))?;
    Ok(add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(selector: &[(&str, &str)]) -> PodTemplateSpec {
        serde_json::from_value(json!({"spec": {"containers": [],
            "nodeSelector": selector.iter().copied().collect::<BTreeMap<_, _>>()}}))
        .unwrap()
    }

    #[test]
    fn only_admin_only_selectors_of_required_components() {
        let req = vec![Required::parse("kube-system/kube-apiserver").unwrap()];
        let api = template(&[
            ("node-role.kubernetes.io/control-plane", ""),
            ("kubernetes.io/os", "linux"),
            ("example.com/pool", "a"),
        ]);
        let other = template(&[("node-role.kubernetes.io/infra", "")]);
        let got = admin_selectors(
            &req,
            [
                ("kube-system", "kube-apiserver", &api),
                ("kube-system", "not-required", &other),
                ("default", "kube-apiserver", &other),
            ],
        );
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [(
                "node-role.kubernetes.io/control-plane".into(),
                String::new()
            )]
        );
    }

    #[test]
    fn only_absent_labels_are_missing() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "m1",
            "labels": {"a.kubernetes.io/x": "1", "node-role.kubernetes.io/control-plane": ""}}}))
        .unwrap();
        let wanted = BTreeMap::from([
            (
                "node-role.kubernetes.io/control-plane".to_string(),
                String::new(),
            ),
            ("a.kubernetes.io/x".to_string(), "2".to_string()),
        ]);
        assert!(missing(&node, &wanted).is_empty());
        let bare: Node = serde_json::from_value(json!({"metadata": {"name": "m1"}})).unwrap();
        assert_eq!(missing(&bare, &wanted).len(), 2);
    }
}
