//! Which pods' statuses this node's container runtime vouches for, so that `ensure`
//! can believe a healthy node at once instead of after `--status-settle` (pure).
//!
//! The danger `start::observe` guards against (bootkube #601) is a Ready status left in
//! etcd by a previous life of the node: after a reboot or a restore, etcd still says
//! Running and Ready for containers that no longer run, until the kubelet writes again.
//! That guard needs time (the status must hold, and the kubelet must renew its Lease
//! after), which costs every `ensure` on a healthy node about 10 s.
//!
//! The kubelet names each running container in the status by the runtime's own id,
//! `<runtime>://<id>`: pkg/kubelet/kuberuntime/kuberuntime_container.go
//! `toKubeContainerStatus` takes `ID: status.Id` from the runtime with `Type` the
//! runtime's name (from the CRI `Version` call), and pkg/kubelet/kubelet_pods.go writes
//! it with `kubecontainer.ContainerID.String()`. Container ids are never reused: after a
//! reboot or a crash the kubelet creates new containers. So when the runtime on this
//! node lists, right now, every container a pod's status says is running, under the
//! same id and the same pod UID, that status was written about the containers that run
//! now — by the kubelet that started them — and is no relic. Only pods on this node
//! can be vouched for (only its runtime is asked); any other keeps the settle rule.
//!
//! What this does not vouch for, as the settle rule does not either: a container that
//! stopped being ready in the last probe period, before its kubelet wrote it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;

use crate::cri::ContainerView;
use crate::cri::proto::ContainerState;

/// The UIDs of the pods bound to `node` whose every container status says running
/// under an id that `runtime` (this node's runtime, listed just now) runs for that pod.
#[must_use]
pub fn confirmed(pods: &[Pod], node: &str, runtime: &[ContainerView]) -> BTreeSet<String> {
    let running: BTreeMap<&str, &str> = runtime
        .iter()
        .filter(|c| c.state == ContainerState::ContainerRunning && !c.pod_uid.is_empty())
        .map(|c| (c.id.as_str(), c.pod_uid.as_str()))
        .collect();
    pods.iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .filter_map(|p| {
            let uid = p.metadata.uid.as_deref().filter(|u| !u.is_empty())?;
            vouched(p, uid, &running).then(|| uid.to_string())
        })
        .collect()
}

fn vouched(pod: &Pod, uid: &str, running: &BTreeMap<&str, &str>) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    !statuses.is_empty()
        && statuses.iter().all(|c| {
            let runs = c.state.as_ref().is_some_and(|s| s.running.is_some());
            let id = c.container_id.as_deref().and_then(runtime_id);
            runs && id.is_some_and(|id| running.get(id) == Some(&uid))
        })
}

/// The runtime's id in a status's `containerID` (`<runtime>://<id>`).
fn runtime_id(container_id: &str) -> Option<&str> {
    container_id
        .split_once("://")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
#[path = "witness_tests.rs"]
mod tests;
