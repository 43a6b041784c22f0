//! The table of built-in resources the double serves (what `discovery.rs` lists and
//! `rest.rs` routes), with what kube-apiserver reports for each: names, kind, scope,
//! short names, categories, whether a status subresource exists, and where the objects
//! live in etcd.

/// One served resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiResource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether `<plural>/status` exists (main updates then keep the stored status).
    pub status: bool,
    pub categories: &'static [&'static str],
    /// A custom resource (JSON in etcd under `<group>/<plural>`).
    pub custom: bool,
}

impl ApiResource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the real server bumps `metadata.generation` on spec changes.
    pub fn has_generation(&self) -> bool {
        self.group == "apps" || self.custom || self.kind == "CustomResourceDefinition"
    }

    /// The resource segment of its etcd keys: `kubeboot::registry`'s for the kinds it
    /// knows, `<group>/<plural>` for custom resources, else the plural (PriorityClass:
    /// `/registry/priorityclasses/`).
    pub fn segment(&self) -> String {
        match kubeboot::registry::builtin(&self.api_version(), self.kind) {
            Some(r) => r.segment.to_string(),
            None if self.custom => format!("{}/{}", self.group, self.plural),
            None => self.plural.to_string(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
const fn res(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    categories: &'static [&'static str],
) -> ApiResource {
    ApiResource {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status,
        categories,
        custom: false,
    }
}

const ALL: &[&str] = &["all"];

/// Everything served; each kind's etcd segment comes from `kubeboot::registry`.
pub const RESOURCES: &[ApiResource] = &[
    res(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        true,
        &[],
    ),
    res("", "v1", "nodes", "node", "Node", false, &["no"], true, &[]),
    res("", "v1", "pods", "pod", "Pod", true, &["po"], true, ALL),
    res(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        false,
        &[],
    ),
    res(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        false,
        &[],
    ),
    res(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        true,
        ALL,
    ),
    res(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        false,
        &[],
    ),
    res(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        &[],
    ),
    res(
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        false,
        &[],
    ),
    res(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        true,
        ALL,
    ),
    res(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        true,
        ALL,
    ),
    res(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        true,
        ALL,
    ),
    res(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        false,
        &[],
    ),
    res(
        RBAC,
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        false,
        &[],
    ),
    res(
        RBAC,
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        false,
        &[],
    ),
    res(RBAC, "v1", "roles", "role", "Role", true, &[], false, &[]),
    res(
        RBAC,
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        false,
        &[],
    ),
    res(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        false,
        &["pc"],
        false,
        &[],
    ),
    res(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
        &["api-extensions"],
    ),
];

const RBAC: &str = "rbac.authorization.k8s.io";

pub const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
