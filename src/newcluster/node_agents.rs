//! The two node agents of a new cluster: the pod checkpointer (masters) and
//! kube-proxy (every node). Neither gets a bootstrap pod: `start` creates them from
//! `manifests/` once the bootstrap api-server answers.

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext, Toleration};
use serde_json::json;
use std::collections::BTreeMap;

use super::objects::{
    self as o, CHECKPOINT_ANNOTATION, Component, IN_CLUSTER_CM, IN_CLUSTER_DIR, Object,
};
use super::{NewClusterError, Plan};

/// Where the checkpointer mounts its kubeconfig. Not under `/etc/kubernetes`, which it
/// mounts from the host: a nested mount point would be created on the host.
pub const CHECKPOINTER_KUBECONFIG_DIR: &str = "/etc/checkpointer";

/// `manifests/pod-checkpointer.yaml`: `kubeboot checkpoint` on every master, itself
/// checkpointed (so it survives a reboot of all masters and can restore the
/// api-server's checkpoint), reading what runs from the container runtime's CRI socket
/// (under the host's `/var/run`) and writing static pods under the host's
/// `/etc/kubernetes`.
pub fn checkpointer(plan: &Plan) -> Component {
    const APP: &str = "pod-checkpointer";
    let container = Container {
        name: APP.into(),
        image: Some(plan.images.pod_checkpointer.clone()),
        // Every path explicit, none left to a default: the test kubelet maps a pod's
        // mounts by rewriting the paths in its argv, and `--host-checkpoint-dir` is the
        // path the manifests name for the kubelet (the same here: /etc/kubernetes is
        // mounted at the same path). Grace 5m, as bootkube's DaemonSet had.
        command: Some(vec![
            "kubeboot".into(),
            "checkpoint".into(),
            format!("--kubeconfig={CHECKPOINTER_KUBECONFIG_DIR}/kubeconfig"),
            "--pod-manifest-path=/etc/kubernetes/manifests".into(),
            "--checkpoint-dir=/etc/kubernetes/checkpoints".into(),
            "--host-checkpoint-dir=/etc/kubernetes/checkpoints".into(),
            // The host's /run/kubeboot (under the /var/run mount), where the systemd unit
            // takes the same lock: root-only, unlike the world-writable /run/lock.
            "--lock-file=/var/run/kubeboot/checkpointer.lock".into(),
            // containerd's socket through the same mount (the host's /var/run is /run):
            // the runtime answers after a power-off, when the kubelet's secure port
            // refuses anyone it cannot authorize through the absent api-server.
            "--cri-socket=/var/run/containerd/containerd.sock".into(),
            "--checkpoint-grace-period=5m".into(),
        ]),
        env: Some(vec![
            o::field_env("NODE_NAME", "spec.nodeName"),
            o::field_env("POD_NAME", "metadata.name"),
            o::field_env("POD_NAMESPACE", "metadata.namespace"),
            o::field_env("HOST_IP", "status.hostIP"),
        ]),
        volume_mounts: Some(vec![
            o::mount("kubeconfig", CHECKPOINTER_KUBECONFIG_DIR, true),
            o::mount("etc-kubernetes", "/etc/kubernetes", false),
            o::mount("var-run", "/var/run", false),
        ]),
        ..Default::default()
    };
    let mut spec = PodSpec {
        containers: vec![container],
        host_network: Some(true),
        priority_class_name: Some("system-node-critical".into()),
        service_account_name: Some(APP.into()),
        volumes: Some(vec![
            o::config_map_volume("kubeconfig", IN_CLUSTER_CM),
            o::host_path_volume("etc-kubernetes", "/etc/kubernetes", "Directory"),
            o::host_path_volume("var-run", "/var/run", "Directory"),
        ]),
        ..Default::default()
    };
    o::on_masters(&mut spec);
    let annotations = BTreeMap::from([(CHECKPOINT_ANNOTATION.to_string(), "true".to_string())]);
    // Its parents' data in kube-system, and a token for each projected service-account
    // volume it checkpoints (its own included); pods on its node in every namespace
    // (`list` with a spec.nodeName field selector, never get or watch); `nodes/proxy`
    // for the kubelet's /pods (its second opinion; the kubelet's webhook authorizes it
    // with a SubjectAccessReview). Nothing else: it never reads Node objects.
    // A parent elsewhere needs a RoleBinding of its namespace to this service account.
    let [role, role_binding] = o::role_for_sa(
        APP,
        vec![
            o::rule(&[""], &["secrets", "configmaps"], &["get"]),
            o::rule(&[""], &["serviceaccounts/token"], &["create"]),
        ],
    );
    Component {
        file: format!("{APP}.yaml"),
        objects: vec![
            o::service_account(APP, true),
            role,
            role_binding,
            o::cluster_role(
                APP,
                vec![
                    o::rule(&[""], &["pods"], &["list"]),
                    o::rule(&[""], &["nodes/proxy"], &["get"]),
                ],
            ),
            o::cluster_role_binding(APP, APP, o::sa_subject(APP)),
            o::daemon_set(APP, "control-plane", Some(annotations), spec),
        ],
    }
}

/// `manifests/kube-proxy.yaml`: on every node (it tolerates every taint), configured
/// by a `KubeProxyConfiguration` in the `kube-proxy` ConfigMap.
pub fn kube_proxy(plan: &Plan) -> Result<Component, NewClusterError> {
    const APP: &str = "kube-proxy";
    const CONFIG_DIR: &str = "/var/lib/kube-proxy";
    let config = serde_yaml_ng::to_string(&json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": format!("{IN_CLUSTER_DIR}/kubeconfig")},
        "clusterCIDR": plan.pod_cidr.to_string(),
    }))
    .map_err(|source| NewClusterError::Serialize {
        what: "the kube-proxy configuration".into(),
        source,
    })?;
    let container = Container {
        name: APP.into(),
        image: Some(plan.images.kube_proxy.clone()),
        command: Some(vec![
            "kube-proxy".into(),
            format!("--config={CONFIG_DIR}/config.yaml"),
            "--hostname-override=$(NODE_NAME)".into(),
        ]),
        env: Some(vec![o::field_env("NODE_NAME", "spec.nodeName")]),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            o::mount("config", CONFIG_DIR, true),
            o::mount("kubeconfig", IN_CLUSTER_DIR, true),
            o::mount("lib-modules", "/lib/modules", true),
            o::mount("xtables-lock", "/run/xtables.lock", false),
        ]),
        ..Default::default()
    };
    let spec = PodSpec {
        containers: vec![container],
        host_network: Some(true),
        priority_class_name: Some("system-node-critical".into()),
        service_account_name: Some(APP.into()),
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]),
        volumes: Some(vec![
            o::config_map_volume("config", APP),
            o::config_map_volume("kubeconfig", IN_CLUSTER_CM),
            o::host_path_volume("lib-modules", "/lib/modules", "Directory"),
            o::host_path_volume("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
        ]),
        ..Default::default()
    };
    Ok(Component {
        file: format!("{APP}.yaml"),
        objects: vec![
            o::service_account(APP, true),
            Object::ConfigMap(o::config_map(APP, &[("config.yaml", config)])),
            o::cluster_role_binding(
                "kubeboot:node-proxier",
                "system:node-proxier",
                o::sa_subject(APP),
            ),
            o::daemon_set(APP, "node", None, spec),
        ],
    })
}
