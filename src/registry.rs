//! The api-server's etcd key layout: which resource a kind is stored under and where.
//!
//! kube-apiserver keeps every object at `<prefix>/<resource>/[<namespace>/]<name>`, but
//! the resource segment is not always the plural of the kind: Nodes live under
//! `minions`, Services under `services/specs`, Endpoints under `services/endpoints`,
//! and non-core groups other than the legacy built-in ones carry their group name
//! (`apiextensions.k8s.io/customresourcedefinitions`, `<group>/<plural>` for custom
//! resources). The table below is what `pkg/registry/*/storage` in Kubernetes wires up
//! for the kinds kubeboot reads or writes; it is kept in one place so the sources, the
//! `inspect` summary and the test doubles agree on it.

/// How one kind is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// `apiVersion` group ("" for core).
    pub group: &'static str,
    pub kind: &'static str,
    /// The resource segment of the etcd key, possibly with a `/` inside.
    pub segment: &'static str,
    pub namespaced: bool,
}

const fn r(
    group: &'static str,
    kind: &'static str,
    segment: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        kind,
        segment,
        namespaced,
    }
}

/// Built-in kinds whose key segment kubeboot knows. Unlisted built-in kinds fall back
/// to the lowercase plural, which is right for most of the rest.
pub const BUILTIN: &[Resource] = &[
    r("", "Namespace", "namespaces", false),
    r("", "Node", "minions", false),
    r("", "Pod", "pods", true),
    r("", "Secret", "secrets", true),
    r("", "ConfigMap", "configmaps", true),
    r("", "Service", "services/specs", true),
    r("", "Endpoints", "services/endpoints", true),
    r("", "ServiceAccount", "serviceaccounts", true),
    r("", "Event", "events", true),
    r("", "PersistentVolume", "persistentvolumes", false),
    r("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    r("apps", "DaemonSet", "daemonsets", true),
    r("apps", "Deployment", "deployments", true),
    r("apps", "ReplicaSet", "replicasets", true),
    r("apps", "StatefulSet", "statefulsets", true),
    r("apps", "ControllerRevision", "controllerrevisions", true),
    r("batch", "Job", "jobs", true),
    r("batch", "CronJob", "cronjobs", true),
    r("coordination.k8s.io", "Lease", "leases", true),
    r(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    r(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    r("rbac.authorization.k8s.io", "Role", "roles", true),
    r(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    r(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "apiextensions.k8s.io/customresourcedefinitions",
        false,
    ),
    r(
        "apiregistration.k8s.io",
        "APIService",
        "apiregistration.k8s.io/apiservices",
        false,
    ),
];

/// The group part of an `apiVersion` ("v1" → "", "apps/v1" → "apps").
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The stored layout of a built-in kind, if kubeboot knows it.
pub fn builtin(api_version: &str, kind: &str) -> Option<&'static Resource> {
    let group = group_of(api_version);
    BUILTIN.iter().find(|r| r.group == group && r.kind == kind)
}

/// The etcd key of an object.
///
/// `prefix` is the api-server's `--etcd-prefix` (e.g. `/registry`). Custom resources
/// need their plural, which only their CRD knows, so the caller passes it as
/// `custom_plural` (ignored for built-in kinds).
pub fn key_for(
    prefix: &str,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    custom_plural: Option<&str>,
) -> Result<String, String> {
    let prefix = prefix.trim_end_matches('/');
    let segment = match (builtin(api_version, kind), custom_plural) {
        (Some(res), _) => res.segment.to_string(),
        (None, Some(plural)) => format!("{}/{plural}", group_of(api_version)),
        (None, None) => {
            return Err(format!(
                "{api_version} {kind} is not a built-in kind kubeboot knows; give its plural"
            ));
        }
    };
    if name.is_empty() || name.contains('/') {
        return Err(format!("{kind} has an invalid name {name:?}"));
    }
    Ok(match namespace {
        Some(ns) if !ns.is_empty() => format!("{prefix}/{segment}/{ns}/{name}"),
        _ => format!("{prefix}/{segment}/{name}"),
    })
}

/// The prefix under which all objects of one resource segment in one namespace live,
/// with the trailing `/` that keeps `kube-system` from matching `kube-system2`.
pub fn namespace_prefix(prefix: &str, segment: &str, namespace: &str) -> String {
    format!("{}/{segment}/{namespace}/", prefix.trim_end_matches('/'))
}

/// The resource a key belongs to, for per-resource counts: `services/specs`,
/// `apiextensions.k8s.io/customresourcedefinitions`, `<group>/<plural>` for custom
/// resources, otherwise the first segment. `None` for keys outside `prefix` (etcd's
/// own `compact_rev_key`, leases of other programs, ...).
pub fn resource_of_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut parts = rest.splitn(3, '/');
    let first = parts.next().filter(|s| !s.is_empty())?;
    let two_level = first == "services" || first.contains('.');
    match (two_level, parts.next()) {
        (true, Some(second)) => rest.get(..first.len() + 1 + second.len()),
        _ => Some(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_apiserver_layout() {
        let cases = [
            (
                "v1",
                "Pod",
                Some("default"),
                "p",
                "/registry/pods/default/p",
            ),
            ("v1", "Node", None, "m1", "/registry/minions/m1"),
            (
                "v1",
                "Service",
                Some("default"),
                "kubernetes",
                "/registry/services/specs/default/kubernetes",
            ),
            (
                "apps/v1",
                "DaemonSet",
                Some("kube-system"),
                "kube-apiserver",
                "/registry/daemonsets/kube-system/kube-apiserver",
            ),
            (
                "v1",
                "Namespace",
                None,
                "kube-system",
                "/registry/namespaces/kube-system",
            ),
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "a.b.io",
                "/registry/apiextensions.k8s.io/customresourcedefinitions/a.b.io",
            ),
        ];
        for (av, kind, ns, name, want) in cases {
            assert_eq!(
                key_for("/registry", av, kind, ns, name, None).as_deref(),
                Ok(want)
            );
        }
    }

    #[test]
    fn custom_resources_need_their_plural() {
        assert!(key_for("/registry", "example.io/v1", "Widget", Some("d"), "w", None).is_err());
        assert_eq!(
            key_for(
                "/registry/",
                "example.io/v1",
                "Widget",
                Some("d"),
                "w",
                Some("widgets")
            ),
            Ok("/registry/example.io/widgets/d/w".to_string())
        );
    }

    #[test]
    fn resource_of_key_groups_two_level_segments() {
        let cases = [
            ("/registry/pods/default/p", Some("pods")),
            ("/registry/services/specs/default/k", Some("services/specs")),
            (
                "/registry/services/endpoints/default/k",
                Some("services/endpoints"),
            ),
            (
                "/registry/apiextensions.k8s.io/customresourcedefinitions/x",
                Some("apiextensions.k8s.io/customresourcedefinitions"),
            ),
            ("/registry/minions/n1", Some("minions")),
            ("compact_rev_key", None),
            ("/registryx/pods/a", None),
            ("/registry/", None),
        ];
        for (key, want) in cases {
            assert_eq!(resource_of_key("/registry", key), want, "{key}");
        }
    }

    #[test]
    fn namespace_prefix_keeps_the_trailing_slash() {
        assert_eq!(
            namespace_prefix("/registry/", "secrets", "kube-system"),
            "/registry/secrets/kube-system/"
        );
    }
}
