//! What any static pod must not carry, shared by the two places that turn an API pod
//! into one: `render` (bootstrap pods from the self-hosted DaemonSets and Deployments)
//! and `checkpoint` (local copies of checkpointed pods). The kubelet runs a static pod
//! with no scheduler and, at the moment it matters, no api-server: scheduling fields
//! mean nothing, and anything that names an API object (a service account, a pull
//! secret, a resource claim) is refused by kubelet >= 1.34 or cannot be resolved.
//! Also the checks both apply to names and paths that end up in host paths.

use k8s_openapi::api::core::v1::PodSpec;

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
}
