//! What any static pod must not carry, shared by the two places that turn an API pod
//! into one: `render` (bootstrap pods from the self-hosted DaemonSets and Deployments)
//! and `checkpoint` (local copies of checkpointed pods). The kubelet runs a static pod
//! with no scheduler and, at the moment it matters, no api-server: scheduling fields
//! mean nothing, and anything that names an API object (a service account, a pull
//! secret, a resource claim) is refused by kubelet >= 1.34 or cannot be resolved.
//! Also the checks both apply to names and paths that end up in host paths.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Why a pod cannot become a static pod at all.
pub const RESOURCE_CLAIMS: &str = "the pod uses resourceClaims";

/// Clears the scheduling and API-bound fields; `Err` for what cannot be dropped
/// (a resource claim is the pod's device, not a hint). Callers add their own rules
/// (render forces hostNetwork, checkpoint keeps it) after this.
pub fn strip(spec: &mut PodSpec) -> Result<(), &'static str> {
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(RESOURCE_CLAIMS);
    }
    spec.resource_claims = None;
    spec.node_name = None;
    spec.node_selector = None;
    spec.affinity = None;
    spec.scheduler_name = None;
    spec.topology_spread_constraints = None;
    spec.scheduling_gates = None;
    spec.workload_ref = None;
    spec.service_account_name = None;
    spec.service_account = None;
    spec.image_pull_secrets = None;
    spec.priority = None;
    spec.preemption_policy = None;
    spec.overhead = None;
    spec.readiness_gates = None;
    spec.active_deadline_seconds = None;
    spec.ephemeral_containers = None;
    Ok(())
}

/// Drops every container's `ports` of a hostNetwork pod, after turning probe and
/// lifecycle references to a named port into its number.
///
/// Why: kube-apiserver defaults the `hostPort` of every containerPort of a hostNetwork
/// pod to the containerPort (`defaultHostNetworkPorts` in pkg/apis/core/v1/defaults.go),
/// and the kubelet's file source defaults static pods the same way. The kubelet then
/// *rejects* a pod whose host port an admitted pod holds (phase Failed, reason
/// NodePorts), and kube-scheduler will not place one there. A bootstrap pod or a
/// checkpoint holds the port while the self-hosted pod must take over on the same node:
/// with declared ports the self-hosted pod is rejected for good instead of crash-looping
/// on bind until its twin goes. Declaring nothing changes no behaviour on the host
/// network (the process binds the port either way) and is what bootkube's templates did.
pub fn drop_host_network_ports(spec: &mut PodSpec) {
    if spec.host_network != Some(true) {
        return;
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let Some(ports) = c.ports.take() else {
            continue;
        };
        let number = |name: &str| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port)
        };
        let resolve = |port: &mut IntOrString| {
            if let IntOrString::String(name) = port
                && let Some(n) = number(name)
            {
                *port = IntOrString::Int(n);
            }
        };
        // Probes and lifecycle hooks name ports the same two ways.
        let probes = [
            c.liveness_probe.as_mut(),
            c.readiness_probe.as_mut(),
            c.startup_probe.as_mut(),
        ]
        .into_iter()
        .flatten()
        .map(|p| (p.http_get.as_mut(), p.tcp_socket.as_mut()));
        let hooks = c
            .lifecycle
            .as_mut()
            .into_iter()
            .flat_map(|l| [l.post_start.as_mut(), l.pre_stop.as_mut()])
            .flatten()
            .map(|h| (h.http_get.as_mut(), h.tcp_socket.as_mut()));
        for (http, tcp) in probes.chain(hooks) {
            if let Some(h) = http {
                resolve(&mut h.port);
            }
            if let Some(t) = tcp {
                resolve(&mut t.port);
            }
        }
    }
}

/// Checks a relative path from untrusted data (an item `path`, a key, a downward API
/// path) before it becomes part of a host path.
pub fn check_rel_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty");
    }
    if path.starts_with('/') {
        return Err("absolute");
    }
    if path.contains('\0') || path.contains('\\') {
        return Err("contains NUL or backslash");
    }
    for part in path.split('/') {
        match part {
            ".." => return Err("contains .."),
            "" | "." => return Err("not normalized"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a single path element (a namespace, object, pod or volume name).
pub fn check_name(name: &str) -> Result<(), &'static str> {
    check_rel_path(name)?;
    if name.contains('/') {
        return Err("contains /");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_their_dir_are_refused() {
        let cases = [
            ("ca.crt", true),
            ("sub/dir/key", true),
            ("..data", true),
            ("", false),
            ("/etc/passwd", false),
            ("../x", false),
            ("a/../../x", false),
            ("a//b", false),
            ("./a", false),
            ("a/", false),
            ("a\\b", false),
            ("a\0b", false),
        ];
        for (path, ok) in cases {
            assert_eq!(check_rel_path(path).is_ok(), ok, "{path:?}");
        }
        assert!(check_name("a/b").is_err());
        assert!(check_name("kube-apiserver").is_ok());
    }

    #[test]
    fn strip_clears_scheduling_and_api_references() {
        let mut spec = PodSpec {
            node_name: Some("n".into()),
            service_account_name: Some("sa".into()),
            priority: Some(1),
            ..Default::default()
        };
        strip(&mut spec).unwrap();
        assert_eq!(spec.node_name, None);
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.priority, None);
        spec.resource_claims = Some(vec![Default::default()]);
        assert_eq!(strip(&mut spec), Err(RESOURCE_CLAIMS));
    }

    #[test]
    fn host_network_ports_are_dropped_and_named_probe_ports_resolved() {
        let mut spec: PodSpec = serde_json::from_value(serde_json::json!({
            "hostNetwork": true,
            "containers": [{"name": "a",
                "ports": [{"name": "https", "containerPort": 6443, "hostPort": 6443}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "https"}},
                "livenessProbe": {"tcpSocket": {"port": "other"}},
                "lifecycle": {"preStop": {"tcpSocket": {"port": "https"}}}}]
        }))
        .unwrap();
        drop_host_network_ports(&mut spec);
        let c = &spec.containers[0];
        assert!(c.ports.is_none());
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.port, IntOrString::Int(6443));
        let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        assert_eq!(
            pre_stop.tcp_socket.as_ref().unwrap().port,
            IntOrString::Int(6443)
        );
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .tcp_socket
            .as_ref()
            .unwrap();
        assert_eq!(live.port, IntOrString::String("other".into()));

        let mut pod_net: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]
        }))
        .unwrap();
        drop_host_network_ports(&mut pod_net);
        assert!(
            pod_net.containers[0].ports.is_some(),
            "pod network keeps its ports"
        );
    }
}
