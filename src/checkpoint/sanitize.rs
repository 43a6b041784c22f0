//! A parent pod, as the api-server serves it → its checkpoint: a static pod manifest the
//! kubelet runs with no api-server, plus what must be written on the host for it.
//!
//! Why this differs from bootkube's `sanitize`:
//! - Since kubernetes#131837 (kubelet 1.34) the kubelet *refuses* a static pod that
//!   references an API object (a Secret, ConfigMap or service account, through a volume,
//!   a projected source or an env var; a PVC, CSI volume or resource claim) instead of
//!   running it without a mirror pod. bootkube rewrote secret and configMap volumes but
//!   kept projected ones, and every pod has a projected service-account token since 1.21,
//!   so its checkpoints would now be refused. Here secret, configMap and projected
//!   volumes all become `hostPath` dirs, and each comes with a [`Materialize`] saying what
//!   to write there; what cannot be expressed that way is an error, never a checkpoint
//!   the kubelet would refuse at the worst moment.
//! - The dir is per volume (`<root>/<kind>/<ns>/<pod>/<volume>`), not per object: two
//!   volumes of one Secret with different `items` or modes cannot collide, and the
//!   `items`, modes and `optional` bootkube ignored are carried to the daemon.
//! - Fields admission or a scheduler own are cleared: `nodeName` (the kubelet sets it),
//!   `schedulerName`, `affinity` (bootkube #1009), `nodeSelector`, spread constraints,
//!   scheduling gates, `priority`, `preemptionPolicy` and `overhead` (the mirror pod's
//!   admission computes them and refuses a pod whose values differ), readiness gates (no
//!   controller would set them), `activeDeadlineSeconds`, ephemeral containers (refused
//!   on create). `priorityClassName` stays only for the two system classes, which exist
//!   in every cluster. Image pull secrets are dropped (they are Secrets) and
//!   `imagePullPolicy: Always` becomes `IfNotPresent`: a checkpoint runs when the cluster
//!   is down, often with no registry credentials or network, from the image its parent
//!   ran here.
//! - Sanitizing a checkpoint returns it unchanged (bootkube #764): the kubelet's pod
//!   list shows checkpoints next to their parents.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::state::PodKey;
use super::volumes;

pub use super::volumes::{
    Content, DownwardFile, FileOwner, Item, Materialize, ObjectFiles, Projection,
};

/// A pod whose annotation has this value `"true"` is a parent: it gets a checkpoint.
pub const ANNOTATION_CHECKPOINT: &str = "checkpointer.alpha.coreos.com/checkpoint";
/// On a checkpoint: the name of its parent. bootkube's key, which operators' tooling knows.
pub const ANNOTATION_CHECKPOINT_OF: &str = "checkpointer.alpha.coreos.com/checkpoint-of";
/// The only priority classes a static pod may name: they exist in every cluster.
const SYSTEM_PRIORITY_CLASSES: [&str; 2] = ["system-node-critical", "system-cluster-critical"];

/// Why a pod cannot be checkpointed. Each names the pod as `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SanitizeError {
    /// The pod lacks what every pod served by an api-server has.
    #[error("pod {pod}: {reason}")]
    Invalid { pod: String, reason: String },
    /// The pod uses something a static pod cannot have.
    #[error("pod {pod} cannot be checkpointed: {what}")]
    Unsupported { pod: String, what: String },
    /// A name or path from the pod would not stay inside its checkpoint dir.
    #[error("pod {pod}: {what} {value:?} is not a safe path ({reason})")]
    UnsafePath {
        pod: String,
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// The checkpoint of one parent.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The static pod manifest (`apiVersion: v1`, `kind: Pod` when serialized).
    pub pod: Pod,
    /// One entry per hostPath dir the daemon must fill, in volume order.
    pub materialize: Vec<Materialize>,
}

/// Whether `pod` is a parent: annotated for checkpointing, and neither a checkpoint nor a
/// static or mirror pod (the kubelet lists those too, with the annotations copied).
#[must_use]
pub fn is_parent(pod: &Pod) -> bool {
    let Some(a) = pod.metadata.annotations.as_ref() else {
        return false;
    };
    a.get(ANNOTATION_CHECKPOINT).is_some_and(|v| v == "true")
        && !a.contains_key(ANNOTATION_CHECKPOINT_OF)
        && !a.contains_key("kubernetes.io/config.mirror")
        && a.get("kubernetes.io/config.source")
            .is_none_or(|s| s == "api")
}

/// Whether `pod` is already a checkpoint.
#[must_use]
pub fn is_checkpoint(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_CHECKPOINT_OF))
}

/// The dirs holding the data of `key`'s checkpoint, which `Remove` deletes.
#[must_use]
pub fn data_dirs(checkpoint_root: &str, key: &PodKey) -> [String; 3] {
    let root = checkpoint_root.trim_end_matches('/');
    ["secrets", "configmaps", "projected"]
        .map(|kind| format!("{root}/{kind}/{}/{}", key.namespace, key.name))
}

/// Builds the checkpoint of `parent`, its data under `checkpoint_root`.
pub fn sanitize(parent: &Pod, checkpoint_root: &str) -> Result<Checkpoint, SanitizeError> {
    if is_checkpoint(parent) {
        return Ok(Checkpoint {
            pod: parent.clone(),
            materialize: Vec::new(),
        });
    }
    let label = pod_label(parent);
    let invalid = |reason: String| SanitizeError::Invalid {
        pod: label.clone(),
        reason,
    };
    let unsafe_path =
        |what: &'static str, value: &str, reason: &'static str| SanitizeError::UnsafePath {
            pod: label.clone(),
            what,
            value: value.to_string(),
            reason,
        };
    let meta = &parent.metadata;
    let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
        return Err(invalid("has no metadata.namespace or metadata.name".into()));
    };
    volumes::check_name(&namespace).map_err(|r| unsafe_path("namespace", &namespace, r))?;
    volumes::check_name(&name).map_err(|r| unsafe_path("name", &name, r))?;
    let Some(uid) = meta.uid.clone().filter(|u| !u.is_empty()) else {
        return Err(invalid("has no metadata.uid".into()));
    };
    if !checkpoint_root.starts_with('/') {
        return Err(invalid(format!(
            "checkpoint root {checkpoint_root:?} is not an absolute path"
        )));
    }
    let mut spec = parent
        .spec
        .clone()
        .ok_or_else(|| invalid("has no spec".into()))?;
    let service_account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    edit_spec(&mut spec).map_err(|what| SanitizeError::Unsupported {
        pod: label.clone(),
        what,
    })?;
    let ctx = volumes::Ctx {
        pod: &label,
        parent,
        namespace: &namespace,
        name: &name,
        root: checkpoint_root.trim_end_matches('/'),
        service_account: &service_account,
    };
    let mut materialize = Vec::new();
    let mut converted = Vec::new();
    for v in spec.volumes.take().unwrap_or_default() {
        let owner = |volume: &str| {
            file_owner(&spec, volume).map_err(|what| SanitizeError::Unsupported {
                pod: label.clone(),
                what,
            })
        };
        let (v, m) = ctx.convert(v, owner)?;
        converted.push(v);
        materialize.extend(m);
    }
    if !converted.is_empty() {
        spec.volumes = Some(converted);
    }
    read_only_mounts(&mut spec, &materialize);
    Ok(Checkpoint {
        pod: Pod {
            metadata: metadata(meta, namespace, name, uid),
            spec: Some(spec),
            status: None,
        },
        materialize,
    })
}

/// Every mount of a volume the daemon fills is read-only, as the kubelet mounts Secret,
/// ConfigMap and projected volumes (read-only since Kubernetes 1.10, CVE-2017-1002102):
/// a container that could write the host dir behind it could plant a link there for root
/// to follow on its next write (issue 12, finding 1).
fn read_only_mounts(spec: &mut PodSpec, materialize: &[Materialize]) {
    let filled: std::collections::BTreeSet<&str> =
        materialize.iter().map(|m| m.volume.as_str()).collect();
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        for m in c.volume_mounts.iter_mut().flatten() {
            if filled.contains(m.name.as_str()) {
                m.read_only = Some(true);
            }
        }
    }
}

/// `namespace/name` of a pod for messages, with placeholders for what is missing.
fn pod_label(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata
            .namespace
            .as_deref()
            .unwrap_or("<no namespace>"),
        pod.metadata.name.as_deref().unwrap_or("<no name>")
    )
}

fn metadata(parent: &ObjectMeta, namespace: String, name: String, uid: String) -> ObjectMeta {
    ObjectMeta {
        annotations: Some(BTreeMap::from([(
            ANNOTATION_CHECKPOINT_OF.to_string(),
            name.clone(),
        )])),
        labels: parent.labels.clone(),
        owner_references: Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: name.clone(),
            uid,
            controller: Some(true),
            block_owner_deletion: None,
        }]),
        name: Some(name),
        namespace: Some(namespace),
        ..Default::default()
    }
}

/// Clears what a static pod must not carry; errors on what it cannot have.
fn edit_spec(spec: &mut PodSpec) -> Result<(), String> {
    crate::staticpod::strip(spec)?;
    // The parent must be admitted beside its checkpoint to take its place back.
    crate::staticpod::drop_host_network_ports(spec);
    spec.automount_service_account_token = None;
    if spec
        .priority_class_name
        .as_deref()
        .is_some_and(|p| !SYSTEM_PRIORITY_CLASSES.contains(&p))
    {
        spec.priority_class_name = None;
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        if c.image_pull_policy.as_deref() == Some("Always") {
            c.image_pull_policy = Some("IfNotPresent".into());
        }
        let from_api = |what: &str| format!("container {:?} {what}", c.name);
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.secret_key_ref {
                return Err(from_api(&format!(
                    "env {:?} reads secret {:?}",
                    e.name, r.name
                )));
            }
            if let Some(r) = &from.config_map_key_ref {
                return Err(from_api(&format!(
                    "env {:?} reads configmap {:?}",
                    e.name, r.name
                )));
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.secret_ref {
                return Err(from_api(&format!("envFrom reads secret {:?}", r.name)));
            }
            if let Some(r) = &e.config_map_ref {
                return Err(from_api(&format!("envFrom reads configmap {:?}", r.name)));
            }
        }
    }
    Ok(())
}

/// Who must read the files of `volume`: the `runAsUser` of the containers mounting it
/// (the container's, else the pod's) and the pod's `fsGroup`. Like bootkube, two users
/// are an error: 0600 files serve one.
fn file_owner(spec: &PodSpec, volume: &str) -> Result<FileOwner, String> {
    let pod_sc = spec.security_context.as_ref();
    let pod_uid = pod_sc.and_then(|s| s.run_as_user);
    let uids: BTreeSet<i64> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.volume_mounts.iter().flatten().any(|m| m.name == volume))
        .filter_map(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.run_as_user)
                .or(pod_uid)
        })
        .collect();
    if uids.len() > 1 {
        return Err(format!(
            "volume {volume:?} is mounted by containers running as different users {uids:?}"
        ));
    }
    Ok(FileOwner {
        uid: uids.first().copied().or(pod_uid),
        gid: pod_sc.and_then(|s| s.fs_group),
    })
}

#[cfg(test)]
#[path = "sanitize_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sanitize_edge_tests.rs"]
mod edge_tests;
