//! The building blocks of the self-hosted objects, and how they are grouped into
//! `manifests/` files.
//!
//! Everything is a k8s-openapi type, so a field that does not exist in Kubernetes 1.35
//! cannot be written. What the types cannot check (required fields, enums, formats)
//! is checked in the tests by `kubernetes-validate --strict`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    HostPathVolumeSource, Namespace, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, Secret, SecretVolumeSource, SecurityContext,
    ServiceAccount, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

/// Every self-hosted object lives here.
pub const NAMESPACE: &str = "kube-system";
/// The pod checkpointer keeps local copies of pods whose template carries this = "true".
pub const CHECKPOINT_ANNOTATION: &str = "checkpointer.alpha.coreos.com/checkpoint";
/// The node label and taint of masters.
pub const CONTROL_PLANE_ROLE: &str = "node-role.kubernetes.io/control-plane";
/// The ConfigMap with the service-account kubeconfig, and where pods mount it.
pub const IN_CLUSTER_CM: &str = "kubeconfig-in-cluster";
pub const IN_CLUSTER_DIR: &str = "/etc/kubernetes/kubeconfig";
/// Where control-plane pods mount their Secret.
pub const SECRETS_DIR: &str = "/etc/kubernetes/secrets";
/// uid and gid of the non-root control-plane pods (`nobody`).
const NOBODY: i64 = 65534;

/// One object of a `manifests/` file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    Secret(Secret),
    ConfigMap(ConfigMap),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    DaemonSet(DaemonSet),
    Deployment(Deployment),
}

/// The objects of one `manifests/<file>`, in the order they must be created.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub file: String,
    pub objects: Vec<Object>,
}

/// `tier` and `k8s-app` labels, the selector of every self-hosted workload.
pub fn labels(tier: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("k8s-app".to_string(), app.to_string()),
        ("tier".to_string(), tier.to_string()),
    ])
}

/// Metadata of a `kube-system` object.
pub fn meta(name: &str, labels: Option<BTreeMap<String, String>>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NAMESPACE.into()),
        labels,
        ..Default::default()
    }
}

/// Metadata of a cluster-scoped object.
pub fn cluster_meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

pub fn namespace() -> Object {
    Object::Namespace(Namespace {
        metadata: cluster_meta(NAMESPACE),
        ..Default::default()
    })
}

/// A service account; `automount: false` for pods that never call the API with it.
pub fn service_account(name: &str, automount: bool) -> Object {
    Object::ServiceAccount(ServiceAccount {
        metadata: meta(name, None),
        automount_service_account_token: (!automount).then_some(false),
        ..Default::default()
    })
}

pub fn sa_subject(name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(NAMESPACE.into()),
        ..Default::default()
    }
}

pub fn user_subject(name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "User".into(),
        name: name.into(),
        ..Default::default()
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

/// Binds the ClusterRole `role` (often a built-in `system:*` one) to `subject`.
pub fn cluster_role_binding(name: &str, role: &str, subject: Subject) -> Object {
    Object::ClusterRoleBinding(ClusterRoleBinding {
        metadata: cluster_meta(name),
        role_ref: role_ref("ClusterRole", role),
        subjects: Some(vec![subject]),
    })
}

pub fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> Object {
    Object::ClusterRole(ClusterRole {
        metadata: cluster_meta(name),
        rules: Some(rules),
        ..Default::default()
    })
}

/// A Role in `kube-system` and its binding to the service account of the same name.
pub fn role_for_sa(name: &str, rules: Vec<PolicyRule>) -> [Object; 2] {
    [
        Object::Role(Role {
            metadata: meta(name, None),
            rules: Some(rules),
        }),
        Object::RoleBinding(RoleBinding {
            metadata: meta(name, None),
            role_ref: role_ref("Role", name),
            subjects: Some(vec![sa_subject(name)]),
        }),
    ]
}

pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        ..Default::default()
    }
}

pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(name, None),
        type_: Some("Opaque".into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

pub fn config_map(name: &str, data: &[(&str, String)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, None),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A Secret volume; `mode` 0440 lets the pod's `fsGroup` read the files.
pub fn secret_volume(volume: &str, secret: &str) -> Volume {
    Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn config_map_volume(volume: &str, config_map: &str) -> Volume {
    Volume {
        name: volume.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn host_path_volume(volume: &str, path: &str, type_: &str) -> Volume {
    Volume {
        name: volume.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: Some(type_.into()),
        }),
        ..Default::default()
    }
}

pub fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// An env var from the downward API (`spec.nodeName`, `status.podIP`, …).
pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An HTTPS GET probe on the host network.
pub fn https_probe(path: &str, port: i32, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            scheme: Some("HTTPS".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        timeout_seconds: Some(15),
        failure_threshold: Some(8),
        ..Default::default()
    }
}

/// Masters only: the control-plane node selector and toleration.
pub fn on_masters(spec: &mut PodSpec) {
    spec.node_selector = Some(BTreeMap::from([(
        CONTROL_PLANE_ROLE.to_string(),
        String::new(),
    )]));
    spec.tolerations = Some(vec![Toleration {
        key: Some(CONTROL_PLANE_ROLE.into()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Default::default()
    }]);
}

/// Pod and container security for the api-server, controller-manager and scheduler:
/// `nobody`, no privileges, default seccomp. The bootstrap copies run as root
/// (`render` clears the uid), which their root-owned 0600 host files require.
pub fn non_root() -> (PodSecurityContext, SecurityContext) {
    (
        PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NOBODY),
            run_as_group: Some(NOBODY),
            fs_group: Some(NOBODY),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

/// A DaemonSet of `app` in `tier`: selector and pod labels `tier`/`k8s-app`, the given
/// pod annotations, rolling updates one node at a time.
pub fn daemon_set(
    app: &str,
    tier: &str,
    annotations: Option<BTreeMap<String, String>>,
    spec: PodSpec,
) -> Object {
    Object::DaemonSet(DaemonSet {
        metadata: meta(app, Some(labels(tier, app))),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels(tier, app)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(tier, app)),
                    annotations,
                    ..Default::default()
                }),
                spec: Some(spec),
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    })
}
