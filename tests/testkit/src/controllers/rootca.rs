//! The root CA certificate publisher: every namespace gets the ConfigMap
//! `kube-root-ca.crt` with `ca.crt`, the CA of `--root-ca-file`, which the token volume
//! the ServiceAccount admission adds to pods reads (`apiserver/sa_admission.rs`); a pod
//! that mounts it waits until it is there, as upstream's do.
//!
//! Upstream: `pkg/controller/certificates/rootcacertpublisher/publisher.go`
//! (`Publisher.syncNamespace`): create the ConfigMap when missing, put `ca.crt` and the
//! description annotation back when they differ; namespaces being deleted are skipped.
//! It writes as `root-ca-cert-publisher` (`system:controller:root-ca-cert-publisher`).
//!
//! *Still simplified:* level-triggered on the manager's resync instead of namespace and
//! ConfigMap informers.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};

pub const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// What to write in a namespace: `None` when its ConfigMap is right already.
pub fn plan(ns: &Namespace, current: Option<&ConfigMap>, ca: &str) -> Option<ConfigMap> {
    if ns.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let data = BTreeMap::from([("ca.crt".to_string(), ca.to_string())]);
    let annotations = BTreeMap::from([(DESCRIPTION_KEY.to_string(), DESCRIPTION.to_string())]);
    match current {
        Some(cm)
            if cm.data.as_ref() == Some(&data)
                && cm
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DESCRIPTION_KEY))
                    .is_some_and(|d| d == DESCRIPTION) =>
        {
            None
        }
        Some(cm) => {
            let mut cm = cm.clone();
            cm.data = Some(data);
            cm.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .extend(annotations);
            Some(cm)
        }
        None => Some(ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some(NAME.into()),
                namespace: ns.metadata.name.clone(),
                annotations: Some(annotations),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }),
    }
}

/// One pass: lists with `reader`, writes with `writer` (the controller's own identity).
pub async fn sync(reader: &Client, writer: &Client, ca: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(reader.clone());
    let all: Api<ConfigMap> = Api::all(reader.clone());
    let existing = all
        .list(&ListParams::default().fields(&format!("metadata.name={NAME}")))
        .await
        .context("listing configmaps")?;
    let by_ns: BTreeMap<String, ConfigMap> = existing
        .items
        .into_iter()
        .map(|cm| (cm.metadata.namespace.clone().unwrap_or_default(), cm))
        .collect();
    for ns in namespaces.list(&ListParams::default()).await?.items {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let Some(cm) = plan(&ns, by_ns.get(&name), ca) else {
            continue;
        };
        let api: Api<ConfigMap> = Api::namespaced(writer.clone(), &name);
        let r = if cm.metadata.resource_version.is_some() {
            api.replace(NAME, &PostParams::default(), &cm).await
        } else {
            api.create(&PostParams::default(), &cm).await
        };
        r.with_context(|| format!("publishing {name}/{NAME}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
    }

    #[test]
    fn created_when_missing_fixed_when_changed_left_when_right() {
        let created = plan(&ns("a"), None, "CA").unwrap();
        assert_eq!(created.metadata.namespace.as_deref(), Some("a"));
        assert_eq!(created.data.as_ref().unwrap()["ca.crt"], "CA");
        assert!(plan(&ns("a"), Some(&created), "CA").is_none());
        let fixed = plan(&ns("a"), Some(&created), "NEW").unwrap();
        assert_eq!(fixed.data.unwrap()["ca.crt"], "NEW");
        let mut gone = ns("b");
        gone.metadata.deletion_timestamp = created.metadata.creation_timestamp.clone().or(Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        ));
        assert!(plan(&gone, None, "CA").is_none());
    }
}
