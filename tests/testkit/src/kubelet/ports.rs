//! Host ports as kube-scheduler's NodePorts plugin and the kubelet's admission see them
//! (`pkg/scheduler/framework/plugins/nodeports/node_ports.go`, `getContainerPorts` and
//! `fitsPorts`; `HostPortInfo.CheckConflict` in the scheduler framework's types): a port
//! is the triple (hostIP, protocol, hostPort) of a container's port with `hostPort > 0`,
//! an empty hostIP meaning 0.0.0.0 and an empty protocol TCP. 0.0.0.0 conflicts with
//! every address on the same protocol and port; another address only with itself and
//! 0.0.0.0. A hostNetwork pod's `containerPort`s count only through the API defaulting
//! (`hostPort = containerPort`), which the api-server and the static pod decoder apply,
//! so nothing here reads `containerPort`. The kubelet *rejects* a pod that conflicts
//! (`admit`), it never waits for the port: a double that waited would let a recovery
//! depend on an ordering Kubernetes refuses.

use k8s_openapi::api::core::v1::Pod;

/// The reason the kubelet gives (`PredicateFailureError.PredicateName`).
pub const REASON: &str = "NodePorts";
/// kube-scheduler's `ErrReason` for the NodePorts filter.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// One host port a pod uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

const ANY: &str = "0.0.0.0";

/// The pod's host ports: `hostPort > 0` of its containers (not init containers, as
/// `getContainerPorts`), sanitized as `HostPortInfo` does.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let mut out: Vec<HostPort> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|h| *h > 0)?;
            let ip = p.host_ip.clone().filter(|s| !s.is_empty());
            let protocol = p.protocol.clone().filter(|s| !s.is_empty());
            Some(HostPort {
                ip: ip.unwrap_or_else(|| ANY.into()),
                protocol: protocol.unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `CheckConflict` of one wanted port against the ports in use.
pub fn conflicts(want: &HostPort, used: &[HostPort]) -> bool {
    used.iter().any(|u| {
        u.port == want.port
            && u.protocol == want.protocol
            && (want.ip == ANY || u.ip == ANY || u.ip == want.ip)
    })
}

/// `fitsPorts`: `Err` with kube-scheduler's reason if any wanted port is in use.
pub fn fits(pod: &Pod, used: &[HostPort]) -> Result<(), &'static str> {
    if host_ports(pod).iter().any(|w| conflicts(w, used)) {
        Err(ERR_REASON)
    } else {
        Ok(())
    }
}

/// The kubelet's verdict on a pod, given the pods it has admitted and that are still
/// active: `Err((reason, message))` as `rejectPod` records it
/// (`pkg/kubelet/kubelet.go`; message `Pod was rejected: ` + the predicate error,
/// `pkg/kubelet/lifecycle/predicate.go`, `PredicateFailureError.Error`).
pub fn admit<'a>(
    pod: &Pod,
    admitted: impl IntoIterator<Item = &'a Pod>,
) -> Result<(), (String, String)> {
    let used: Vec<HostPort> = admitted.into_iter().flat_map(host_ports).collect();
    fits(pod, &used).map_err(|why| {
        (
            REASON.to_string(),
            format!("Pod was rejected: Predicate {REASON} failed: {why}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ports: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"spec": {"containers": [
            {"name": "c", "ports": ports}]}}))
        .unwrap_or_default()
    }

    #[test]
    fn triples_conflict_like_check_conflict() {
        let used = host_ports(&pod(serde_json::json!([
            {"containerPort": 1, "hostPort": 80, "hostIP": "127.0.0.1"},
            {"containerPort": 2, "hostPort": 53, "protocol": "UDP"}])));
        let want = |v| host_ports(&pod(v));
        let c = |v| want(v).iter().any(|w| conflicts(w, &used));
        // 0.0.0.0 (empty) conflicts with any address.
        assert!(c(
            serde_json::json!([{"containerPort": 80, "hostPort": 80}])
        ));
        assert!(c(
            serde_json::json!([{"containerPort": 80, "hostPort": 80, "hostIP": "127.0.0.1"}])
        ));
        assert!(!c(
            serde_json::json!([{"containerPort": 80, "hostPort": 80, "hostIP": "127.0.0.2"}])
        ));
        assert!(!c(
            serde_json::json!([{"containerPort": 80, "hostPort": 80, "protocol": "UDP"}])
        ));
        assert!(c(
            serde_json::json!([{"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"}])
        ));
        assert!(!c(
            serde_json::json!([{"containerPort": 53, "hostPort": 53}])
        ));
        // Only hostPort counts; containerPort alone claims nothing.
        assert!(!c(serde_json::json!([{"containerPort": 80}])));
    }

    #[test]
    fn rejection_reads_like_the_kubelet() {
        let held = pod(serde_json::json!([{"containerPort": 80, "hostPort": 80}]));
        let r = admit(&held, [&held]);
        assert_eq!(
            r,
            Err((
                "NodePorts".into(),
                "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports".into()
            ))
        );
        assert_eq!(admit(&held, []), Ok(()));
    }
}
