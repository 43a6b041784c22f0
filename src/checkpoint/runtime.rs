//! What runs on this node (the checkpointer's R): the container runtime first, the
//! kubelet's `/pods` as the second opinion.
//!
//! Why this order: after a power-off the api-server is gone, and a default kubelet
//! (`readOnlyPort: 0`, webhook authentication and authorization) refuses every `/pods`
//! request on 10250 because it cannot ask the api-server about it (bootkube
//! #1025/#1027). The runtime's CRI socket answers with no api-server, no network and no
//! credentials, and is what bootkube asked too. So:
//!
//! - the CRI socket (`--cri-socket`) is asked each cycle; when it answers, its
//!   `SANDBOX_READY` sandboxes are what runs, and the kubelet is not asked;
//! - when it is absent or does not answer, the kubelet's `/pods` (the secure port,
//!   verified; the read-only port only when the operator turned it on) decides, as before;
//! - when neither answers, what runs is unknown and nothing is activated or deactivated
//!   (bootkube took a CRI error as "nothing runs" and started every checkpoint at once).
//!
//! The two agree on the rule that matters: a pod the kubelet keeps trying (its sandbox
//! READY, its container crash-looping on the port its checkpoint holds) counts as
//! running, so the checkpoint steps aside. A parent's identity on a sandbox is the pod's
//! namespace and name from the kubelet's labels, and whether it is a parent is read
//! from the pod's annotations, which the kubelet copies onto the sandbox unchanged.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::kubelet::{Kubelet, running_parents};
use super::sanitize;
use super::state::PodKey;
use crate::cri::{Runtime, SandboxPod};

/// Where this cycle's view came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cri,
    Kubelet,
}

/// This cycle's view of what runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub source: Source,
    /// The parents that count as running.
    pub running: BTreeSet<PodKey>,
    /// The kubelet's pods, when the kubelet was asked and answered.
    pub kubelet: Option<Vec<Pod>>,
    /// Why the CRI socket was not used, when the kubelet decided instead.
    pub cri_error: Option<String>,
}

/// The parents among the pods with a ready sandbox: the same test as for the kubelet's
/// list (annotated, neither a checkpoint nor a static or mirror pod).
#[must_use]
pub fn running_from_sandboxes(pods: &[SandboxPod]) -> BTreeSet<PodKey> {
    pods.iter()
        .filter(|p| p.ready)
        .filter(|p| sanitize::is_parent(&as_pod(p)))
        .map(|p| PodKey::new(p.namespace.clone(), p.name.clone()))
        .collect()
}

fn as_pod(p: &SandboxPod) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(p.name.clone()),
            namespace: Some(p.namespace.clone()),
            uid: Some(p.uid.clone()).filter(|u| !u.is_empty()),
            labels: Some(p.labels.clone()),
            annotations: Some(p.annotations.clone()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The CRI socket (if configured) and the kubelet.
#[derive(Clone)]
pub struct WhatRuns {
    pub cri: Option<Runtime>,
    pub kubelet: Kubelet,
}

impl WhatRuns {
    /// This cycle's view; the error says why neither source answered.
    pub async fn observe(&self) -> Result<Seen, String> {
        let cri_error = match &self.cri {
            Some(rt) => match rt.ready_pods().await {
                Ok(pods) => {
                    return Ok(Seen {
                        source: Source::Cri,
                        running: running_from_sandboxes(&pods),
                        kubelet: None,
                        cri_error: None,
                    });
                }
                Err(e) => Some(e),
            },
            None => None,
        };
        match self.kubelet.pods().await {
            Ok(pods) => Ok(Seen {
                source: Source::Kubelet,
                running: running_parents(&pods),
                kubelet: Some(pods),
                cri_error,
            }),
            Err(k) => Err(match cri_error {
                Some(c) => format!("what runs here is unknown: {c}; {k}"),
                None => format!("what runs here is unknown: {k}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sandbox(ns: &str, name: &str, ready: bool, annotations: &[(&str, &str)]) -> SandboxPod {
        SandboxPod {
            sandbox_id: format!("{ns}-{name}"),
            namespace: ns.into(),
            name: name.into(),
            uid: "u".into(),
            ready,
            labels: BTreeMap::new(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const CK: (&str, &str) = ("checkpointer.alpha.coreos.com/checkpoint", "true");

    #[test]
    fn ready_annotated_sandboxes_of_api_pods_are_running_parents() {
        let pods = [
            // The self-hosted api-server, crash-looping on its port: its sandbox is ready.
            sandbox("kube-system", "kube-apiserver-x", true, &[CK]),
            // Stopped: not running.
            sandbox("kube-system", "kube-apiserver-old", false, &[CK]),
            // Not annotated.
            sandbox("default", "plain", true, &[]),
            // A checkpoint, run by the kubelet as a static pod.
            sandbox(
                "kube-system",
                "kube-apiserver-x-node1",
                true,
                &[
                    CK,
                    (
                        "checkpointer.alpha.coreos.com/checkpoint-of",
                        "kube-apiserver-x",
                    ),
                    ("kubernetes.io/config.source", "file"),
                ],
            ),
            // Another static pod with the annotation copied.
            sandbox(
                "kube-system",
                "static",
                true,
                &[CK, ("kubernetes.io/config.source", "file")],
            ),
            // An annotation that is not "true".
            sandbox(
                "default",
                "off",
                true,
                &[("checkpointer.alpha.coreos.com/checkpoint", "false")],
            ),
        ];
        let want: BTreeSet<PodKey> = [PodKey::new("kube-system", "kube-apiserver-x")].into();
        assert_eq!(running_from_sandboxes(&pods), want);
    }

    #[test]
    fn nothing_ready_is_nothing_running() {
        assert!(running_from_sandboxes(&[]).is_empty());
        let stopped = [sandbox("kube-system", "a", false, &[CK])];
        assert!(running_from_sandboxes(&stopped).is_empty());
    }
}
