//! Pod sandboxes and containers as the kubelet labelled them, read back (pure).
//!
//! The kubelet creates one sandbox per pod (`pkg/kubelet/kuberuntime/
//! kuberuntime_sandbox.go`, `generatePodSandboxConfig`) with metadata `{name, uid,
//! namespace, attempt}`, labels = the pod's labels plus `io.kubernetes.pod.name`,
//! `io.kubernetes.pod.namespace` and `io.kubernetes.pod.uid` (`labels.go`,
//! `newPodLabels`), and annotations = the pod's annotations unchanged
//! (`newPodAnnotations`); the runtime must hand them back unaltered (api.proto,
//! `PodSandbox.annotations`). So a sandbox carries what the checkpointer needs to tell a
//! parent from a checkpoint or a static pod: the pod's annotations. The identity is read
//! from the labels first, as the kubelet itself reads it back
//! (`getPodSandboxInfoFromLabels`), then from the metadata; a sandbox with neither (not
//! made by a kubelet) is skipped. bootkube's checkpointer read the same labels.
//!
//! Only a `SANDBOX_READY` sandbox counts as a running pod, whatever the client asked the
//! runtime to filter: a runtime that ignores the filter must not make a stopped pod look
//! alive.

use std::collections::BTreeMap;

use super::proto;

/// The label holding the pod's name (kubelet `types.KubernetesPodNameLabel`).
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// The label holding the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The label holding the pod's UID.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// The label holding a container's name (kubelet `types.KubernetesContainerNameLabel`).
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// A pod, as its sandbox says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPod {
    pub sandbox_id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Whether the sandbox is `SANDBOX_READY`.
    pub ready: bool,
    /// The pod's own labels (the three `io.kubernetes.pod.*` removed).
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A container, as the runtime says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub id: String,
    pub sandbox_id: String,
    /// The container's name (its label, else its metadata).
    pub name: String,
    pub namespace: String,
    pub pod: String,
    /// The pod's UID (its label; empty when the runtime lost it).
    pub pod_uid: String,
    pub state: proto::ContainerState,
}

fn pick(labels: &BTreeMap<String, String>, label: &str, fallback: Option<&str>) -> String {
    labels
        .get(label)
        .filter(|v| !v.is_empty())
        .cloned()
        .or_else(|| fallback.filter(|v| !v.is_empty()).map(str::to_string))
        .unwrap_or_default()
}

fn sorted(m: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The pod `s` belongs to; `None` for a sandbox that names no pod.
#[must_use]
pub fn sandbox_pod(s: &proto::PodSandbox) -> Option<SandboxPod> {
    let labels = sorted(&s.labels);
    let meta = s.metadata.as_ref();
    let name = pick(&labels, LABEL_POD_NAME, meta.map(|m| m.name.as_str()));
    let namespace = pick(
        &labels,
        LABEL_POD_NAMESPACE,
        meta.map(|m| m.namespace.as_str()),
    );
    let uid = pick(&labels, LABEL_POD_UID, meta.map(|m| m.uid.as_str()));
    if name.is_empty() || namespace.is_empty() {
        return None;
    }
    let own = labels
        .into_iter()
        .filter(|(k, _)| {
            ![LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID].contains(&k.as_str())
        })
        .collect();
    Some(SandboxPod {
        sandbox_id: s.id.clone(),
        namespace,
        name,
        uid,
        ready: s.state == proto::PodSandboxState::SandboxReady as i32,
        labels: own,
        annotations: sorted(&s.annotations),
    })
}

/// The pods with a ready sandbox among `sandboxes` (see the module doc).
#[must_use]
pub fn ready_pods(sandboxes: &[proto::PodSandbox]) -> Vec<SandboxPod> {
    sandboxes
        .iter()
        .filter_map(sandbox_pod)
        .filter(|p| p.ready)
        .collect()
}

/// `c` with its pod and state; an unknown state value reads as `CONTAINER_UNKNOWN`.
#[must_use]
pub fn container_view(c: &proto::Container) -> ContainerView {
    let labels = sorted(&c.labels);
    let meta_name = c.metadata.as_ref().map(|m| m.name.as_str());
    ContainerView {
        id: c.id.clone(),
        sandbox_id: c.pod_sandbox_id.clone(),
        name: pick(&labels, LABEL_CONTAINER_NAME, meta_name),
        namespace: pick(&labels, LABEL_POD_NAMESPACE, None),
        pod: pick(&labels, LABEL_POD_NAME, None),
        pod_uid: pick(&labels, LABEL_POD_UID, None),
        state: proto::ContainerState::try_from(c.state)
            .unwrap_or(proto::ContainerState::ContainerUnknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn map(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sandbox(
        id: &str,
        state: proto::PodSandboxState,
        labels: &[(&str, &str)],
    ) -> proto::PodSandbox {
        proto::PodSandbox {
            id: id.into(),
            metadata: Some(proto::PodSandboxMetadata {
                name: "meta-name".into(),
                uid: "meta-uid".into(),
                namespace: "meta-ns".into(),
                attempt: 0,
            }),
            state: state as i32,
            created_at: 1,
            labels: map(labels),
            annotations: map(&[("checkpointer.alpha.coreos.com/checkpoint", "true")]),
            runtime_handler: String::new(),
        }
    }

    #[test]
    fn labels_name_the_pod_and_are_stripped_of_the_kubelets_own() {
        let s = sandbox(
            "s1",
            proto::PodSandboxState::SandboxReady,
            &[
                (LABEL_POD_NAME, "kube-apiserver-x"),
                (LABEL_POD_NAMESPACE, "kube-system"),
                (LABEL_POD_UID, "u1"),
                ("k8s-app", "kube-apiserver"),
            ],
        );
        let p = sandbox_pod(&s).unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.uid.as_str()),
            ("kube-system", "kube-apiserver-x", "u1")
        );
        assert!(p.ready);
        assert_eq!(
            p.labels,
            BTreeMap::from([("k8s-app".to_string(), "kube-apiserver".to_string())])
        );
        assert_eq!(
            p.annotations
                .get("checkpointer.alpha.coreos.com/checkpoint")
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn metadata_is_the_fallback_and_a_sandbox_naming_no_pod_is_skipped() {
        let s = sandbox("s2", proto::PodSandboxState::SandboxReady, &[]);
        let p = sandbox_pod(&s).unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str()),
            ("meta-ns", "meta-name")
        );
        let mut bare = s.clone();
        bare.metadata = None;
        assert_eq!(sandbox_pod(&bare), None);
    }

    #[test]
    fn only_ready_sandboxes_count_even_if_the_runtime_ignored_the_filter() {
        let ready = sandbox("a", proto::PodSandboxState::SandboxReady, &[]);
        let stopped = sandbox("b", proto::PodSandboxState::SandboxNotready, &[]);
        let mut odd = sandbox("c", proto::PodSandboxState::SandboxReady, &[]);
        odd.state = 7;
        let got: Vec<String> = ready_pods(&[ready, stopped, odd])
            .into_iter()
            .map(|p| p.sandbox_id)
            .collect();
        assert_eq!(got, vec!["a".to_string()]);
    }

    #[test]
    fn containers_carry_their_pod_and_state() {
        let c = proto::Container {
            id: "c1".into(),
            pod_sandbox_id: "s1".into(),
            metadata: Some(proto::ContainerMetadata {
                name: "meta".into(),
                attempt: 2,
            }),
            state: proto::ContainerState::ContainerExited as i32,
            labels: map(&[
                (LABEL_CONTAINER_NAME, "apiserver"),
                (LABEL_POD_NAME, "p"),
                (LABEL_POD_NAMESPACE, "ns"),
            ]),
            ..Default::default()
        };
        let v = container_view(&c);
        assert_eq!(
            (v.name.as_str(), v.pod.as_str(), v.namespace.as_str()),
            ("apiserver", "p", "ns")
        );
        assert_eq!(v.state, proto::ContainerState::ContainerExited);
        let odd = proto::Container { state: 42, ..c };
        assert_eq!(
            container_view(&odd).state,
            proto::ContainerState::ContainerUnknown
        );
    }
}
