//! apiVersion + kind → the protobuf message that holds the object.
//!
//! etcd values carry only the TypeMeta (`apps/v1`, `Deployment`); the compiled protos name
//! messages by Go package (`k8s.io.api.apps.v1.Deployment`). The package is the group's first DNS label
//! and the version, with a few groups that live outside `k8s.io/api` (see docs/codec.md).

use prost_reflect::MessageDescriptor;

use super::descriptors::{self, Descriptors};

/// API groups whose types the compiled protos define (and the api-server stores as protobuf).
/// An exact list, so a custom resource group such as `apps.example.com` never matches.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "admission.k8s.io",
    "admissionregistration.k8s.io",
    "apidiscovery.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "imagepolicy.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Is this one of the groups built into kube-apiserver (as opposed to a custom resource's)?
pub(crate) fn is_built_in_group(group: &str) -> bool {
    BUILT_IN_GROUPS.contains(&group)
}

/// The proto package for a built-in API group and version, e.g. `("apps", "v1")` → `k8s.io.api.apps.v1`.
pub(crate) fn package(group: &str, version: &str) -> Option<String> {
    if !is_built_in_group(group) {
        return None;
    }
    Some(match group {
        "" => format!("k8s.io.api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        "apiregistration.k8s.io" => {
            format!("k8s.io.kube_aggregator.pkg.apis.apiregistration.{version}")
        }
        "internal.apiserver.k8s.io" => format!("k8s.io.api.apiserverinternal.{version}"),
        _ => {
            let label = group.split('.').next().unwrap_or(group);
            format!("k8s.io.api.{label}.{version}")
        }
    })
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// The release's message for this TypeMeta, if the protos have one.
pub(crate) fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    message_for_in(Descriptors::Release, api_version, kind)
}

/// The message for this TypeMeta in one descriptor set. A valid Kubernetes kind is a Go
/// identifier, so anything else is rejected before it reaches the pool.
pub(crate) fn message_for_in(
    set: Descriptors,
    api_version: &str,
    kind: &str,
) -> Option<MessageDescriptor> {
    let (group, version) = split_api_version(api_version);
    let identifier =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier(kind) || !identifier(version) {
        return None;
    }
    descriptors::message_in(set, &format!("{}.{kind}", package(group, version)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_follow_the_group_rules() {
        let cases = [
            ("", "v1", "k8s.io.api.core.v1"),
            ("apps", "v1", "k8s.io.api.apps.v1"),
            ("rbac.authorization.k8s.io", "v1", "k8s.io.api.rbac.v1"),
            (
                "flowcontrol.apiserver.k8s.io",
                "v1",
                "k8s.io.api.flowcontrol.v1",
            ),
            (
                "apiextensions.k8s.io",
                "v1",
                "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1",
            ),
            (
                "apiregistration.k8s.io",
                "v1",
                "k8s.io.kube_aggregator.pkg.apis.apiregistration.v1",
            ),
            (
                "internal.apiserver.k8s.io",
                "v1alpha1",
                "k8s.io.api.apiserverinternal.v1alpha1",
            ),
        ];
        for (group, version, want) in cases {
            assert_eq!(
                package(group, version).as_deref(),
                Some(want),
                "{group}/{version}"
            );
        }
    }

    #[test]
    fn control_plane_kinds_resolve() {
        for (av, kind) in [
            ("v1", "Pod"),
            ("v1", "Secret"),
            ("apps/v1", "DaemonSet"),
            ("batch/v1", "Job"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("coordination.k8s.io/v1", "Lease"),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            ("apiregistration.k8s.io/v1", "APIService"),
            ("internal.apiserver.k8s.io/v1alpha1", "StorageVersion"),
        ] {
            assert!(message_for(av, kind).is_some(), "{av} {kind}");
        }
    }

    #[test]
    fn unknown_or_hostile_kinds_do_not_resolve() {
        assert!(message_for("example.com/v1", "Widget").is_none());
        assert!(message_for("apps.example.com/v1", "Deployment").is_none());
        assert!(message_for("v1", "Pod.spec").is_none());
        assert!(message_for("v1", "").is_none());
        assert!(message_for("", "Pod").is_none());
    }
}
