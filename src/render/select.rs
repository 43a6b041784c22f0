//! Which DaemonSets and Deployments are the control plane.
//!
//! Like bootkube, only the parent object's **own** `k8s-app` label counts (falling back
//! to `component`, the older convention); template labels are ignored, because a user
//! workload may copy them. Self-hosted etcd is a DaemonSet (or Deployment) labelled
//! `k8s-app=etcd` and becomes `bootstrap-etcd`, restored from a backup when there is
//! one (`etcd.rs`). bootkube 0.9's etcd-operator pods (`kube-etcd`) had no such parent
//! and are not rendered: they only yield a warning.

use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::RenderError;
use crate::model::ControlPlane;

/// The components kubeboot renders bootstrap pods for.
pub const COMPONENTS: [&str; 4] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    ETCD,
];

/// The component label of a self-hosted etcd.
pub const ETCD: &str = "etcd";

/// Label values of etcd-operator's etcd, recognised but not rendered.
const LEGACY_ETCD_COMPONENTS: [&str; 1] = ["kube-etcd"];

/// The kind of a parent object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    DaemonSet,
    Deployment,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DaemonSet => "DaemonSet",
            Kind::Deployment => "Deployment",
        }
    }
}

/// One self-hosted control-plane object to turn into a bootstrap pod.
#[derive(Debug, Clone)]
pub struct Parent<'a> {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// One of [`COMPONENTS`].
    pub component: &'static str,
    pub template: &'a PodTemplateSpec,
}

impl Parent<'_> {
    /// `bootstrap-<parent name>`, the static pod's name.
    pub fn pod_name(&self) -> String {
        format!("bootstrap-{}", self.name)
    }

    /// Where the pod's manifest goes in the asset dir.
    pub fn manifest_path(&self) -> String {
        format!("bootstrap-manifests/{}.yaml", self.pod_name())
    }
}

/// Errors and warnings name a parent as `daemonset kube-system/kube-apiserver`.
impl fmt::Display for Parent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.kind.as_str().to_ascii_lowercase(),
            self.namespace,
            self.name
        )
    }
}

/// The component a parent's own labels name, if any (`k8s-app` wins over `component`).
pub fn component_label(meta: &ObjectMeta) -> Option<&str> {
    let labels = meta.labels.as_ref()?;
    labels
        .get("k8s-app")
        .or_else(|| labels.get("component"))
        .map(String::as_str)
}

/// The control-plane parents of `cp`, sorted by namespace, name and kind.
pub fn parents<'a>(
    cp: &'a ControlPlane,
    warnings: &mut Vec<String>,
) -> Result<Vec<Parent<'a>>, RenderError> {
    let objects = cp
        .daemonsets
        .iter()
        .map(|d| {
            (
                Kind::DaemonSet,
                &d.metadata,
                d.spec.as_ref().map(|s| &s.template),
            )
        })
        .chain(cp.deployments.iter().map(|d| {
            (
                Kind::Deployment,
                &d.metadata,
                d.spec.as_ref().map(|s| &s.template),
            )
        }));
    let mut out = Vec::new();
    for (kind, meta, template) in objects {
        let Some(label) = component_label(meta) else {
            continue;
        };
        let name = meta.name.clone().unwrap_or_default();
        let namespace = meta.namespace.clone().unwrap_or_default();
        if LEGACY_ETCD_COMPONENTS.contains(&label) {
            warnings.push(format!(
                "{} {namespace}/{name} looks like etcd-operator's etcd ({label}); kubeboot renders a bootstrap etcd only for k8s-app=etcd, so the recovered control plane needs an etcd that is still running",
                kind.as_str().to_ascii_lowercase()
            ));
            continue;
        }
        let Some(component) = COMPONENTS.iter().copied().find(|c| *c == label) else {
            continue;
        };
        let owner = format!("{} {namespace}/{name}", kind.as_str().to_ascii_lowercase());
        if name.is_empty() || namespace.is_empty() {
            return Err(RenderError::Invalid {
                owner,
                reason: "has no metadata.name or metadata.namespace".into(),
            });
        }
        let Some(template) = template else {
            return Err(RenderError::Invalid {
                owner,
                reason: "has no spec.template".into(),
            });
        };
        out.push(Parent {
            kind,
            namespace,
            name,
            component,
            template,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name, a.kind).cmp(&(&b.namespace, &b.name, b.kind)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn component_label_table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[("k8s-app", "kube-apiserver")], Some("kube-apiserver")),
            (&[("component", "kube-scheduler")], Some("kube-scheduler")),
            (
                &[("k8s-app", "kube-apiserver"), ("component", "other")],
                Some("kube-apiserver"),
            ),
            (&[("tier", "control-plane")], None),
            (&[], None),
        ];
        for (labels, want) in cases {
            assert_eq!(component_label(&meta(labels)), *want, "{labels:?}");
        }
        assert_eq!(component_label(&ObjectMeta::default()), None);
    }
}
