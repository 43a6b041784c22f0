//! The three control-plane components, as `render` (the recovery renderer) expects
//! them: a `kube-apiserver` DaemonSet and `kube-controller-manager`/`kube-scheduler`
//! Deployments in `kube-system`, labelled `tier=control-plane,k8s-app=<name>`, on
//! masters only, each reading its keys from one Secret mounted at
//! `/etc/kubernetes/secrets` and (controller-manager, scheduler) its kubeconfig from
//! the `kubeconfig-in-cluster` ConfigMap, which `render` swaps for the bootstrap
//! kubeconfig in the bootstrap pods.
//!
//! Only the api-server carries the checkpoint annotation: it is the one component
//! whose loss (all masters rebooted at once) the cluster cannot heal by itself; the
//! other two are rescheduled as soon as an api-server runs.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    ResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

use super::Plan;
use super::objects::{
    self as o, CHECKPOINT_ANNOTATION, Component, IN_CLUSTER_CM, IN_CLUSTER_DIR, Object, SECRETS_DIR,
};
use super::pki::{self, Pki};

const TIER: &str = "control-plane";

/// A path inside the control-plane Secret mount.
fn secret_file(key: &str) -> String {
    format!("{SECRETS_DIR}/{key}")
}

fn requests(cpu: &str, memory: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        ..Default::default()
    }
}

/// The pod template shared by the three: masters only, non-root, its Secret (if any)
/// and the in-cluster kubeconfig (if `kubeconfig`).
fn template(
    app: &str,
    mut container: Container,
    secret: bool,
    kubeconfig: bool,
) -> PodTemplateSpec {
    let (pod_sc, container_sc) = o::non_root();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if secret {
        volumes.push(o::secret_volume("secrets", app));
        mounts.push(o::mount("secrets", SECRETS_DIR, true));
    }
    if kubeconfig {
        volumes.push(o::config_map_volume("kubeconfig", IN_CLUSTER_CM));
        mounts.push(o::mount("kubeconfig", IN_CLUSTER_DIR, true));
    }
    container.security_context = Some(container_sc);
    container.volume_mounts = Some(mounts);
    let mut spec = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        security_context: Some(pod_sc),
        service_account_name: Some(app.into()),
        automount_service_account_token: Some(kubeconfig),
        ..Default::default()
    };
    o::on_masters(&mut spec);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(o::labels(TIER, app)),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(o::labels(TIER, app)),
        ..Default::default()
    }
}

/// Two replicas on different masters when there are two.
fn deployment(app: &str, mut template: PodTemplateSpec) -> Object {
    if let Some(spec) = template.spec.as_mut() {
        spec.priority_class_name = Some("system-cluster-critical".into());
        spec.affinity = Some(Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: PodAffinityTerm {
                            label_selector: Some(selector(app)),
                            topology_key: "kubernetes.io/hostname".into(),
                            ..Default::default()
                        },
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    Object::Deployment(Deployment {
        metadata: o::meta(app, Some(o::labels(TIER, app))),
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: selector(app),
            template,
            ..Default::default()
        }),
        status: None,
    })
}

/// A port below 1024 on the host network needs `NET_BIND_SERVICE`, which the kernel
/// gives a non-root process only as an ambient capability, and Kubernetes sets none.
/// So such an api-server runs as root, with that one capability.
fn privileged_port(spec: &mut PodSpec) {
    if let Some(sc) = spec.security_context.as_mut() {
        sc.run_as_non_root = Some(false);
        sc.run_as_user = Some(0);
    }
    for c in &mut spec.containers {
        if let Some(caps) = c
            .security_context
            .as_mut()
            .and_then(|sc| sc.capabilities.as_mut())
        {
            caps.add = Some(vec!["NET_BIND_SERVICE".into()]);
        }
    }
}

/// On every component that serves on the host network beside its bootstrap pod or
/// checkpoint: SO_REUSEPORT on its serving socket (`SecureServingOptions` in
/// `k8s.io/apiserver`, which kube-apiserver, kube-scheduler and kube-controller-manager
/// share). The kernel lets a second socket bind the port only when every socket on it
/// set SO_REUSEPORT, and the bootstrap pods and checkpoints are copies of these specs,
/// so the self-hosted pod binds while its twin still serves instead of crash-looping
/// into the kubelet's back-off (up to 300 s) until the twin is gone. While both run, the
/// kernel spreads new connections between them; both serve the same cluster.
const PERMIT_PORT_SHARING: &str = "--permit-port-sharing=true";

/// `manifests/kube-apiserver.yaml`.
pub fn apiserver(plan: &Plan, pki: &Pki) -> Component {
    const APP: &str = "kube-apiserver";
    let port = i32::from(plan.secure_port);
    let mut flags = vec![
        "kube-apiserver".to_string(),
        "--advertise-address=$(POD_IP)".into(),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        "--bind-address=0.0.0.0".into(),
        format!("--client-ca-file={}", secret_file("ca.crt")),
        "--enable-admission-plugins=NodeRestriction".into(),
        format!("--etcd-servers={}", plan.etcd_servers_flag()),
    ];
    let mut data: Vec<(&str, &str)> = vec![
        ("apiserver.crt", &pki.apiserver.cert_pem),
        ("apiserver.key", &pki.apiserver.key_pem),
        ("ca.crt", &pki.ca.cert_pem),
        ("kubelet-client.crt", &pki.kubelet_client.cert_pem),
        ("kubelet-client.key", &pki.kubelet_client.key_pem),
        ("service-account.key", &pki.service_account_key_pem),
        ("service-account.pub", &pki.service_account_pub_pem),
    ];
    if let Some(etcd) = &pki.etcd {
        flags.extend([
            format!("--etcd-cafile={}", secret_file("etcd-client-ca.crt")),
            format!("--etcd-certfile={}", secret_file("etcd-client.crt")),
            format!("--etcd-keyfile={}", secret_file("etcd-client.key")),
        ]);
        data.extend([
            ("etcd-client-ca.crt", etcd.ca.cert_pem.as_str()),
            ("etcd-client.crt", &etcd.client.cert_pem),
            ("etcd-client.key", &etcd.client.key_pem),
        ]);
    }
    flags.extend([
        format!(
            "--kubelet-client-certificate={}",
            secret_file("kubelet-client.crt")
        ),
        format!("--kubelet-client-key={}", secret_file("kubelet-client.key")),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        PERMIT_PORT_SHARING.into(),
        format!("--secure-port={port}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!(
            "--service-account-key-file={}",
            secret_file("service-account.pub")
        ),
        format!(
            "--service-account-signing-key-file={}",
            secret_file("service-account.key")
        ),
        format!("--service-cluster-ip-range={}", plan.service_cidr),
        format!("--tls-cert-file={}", secret_file("apiserver.crt")),
        format!("--tls-private-key-file={}", secret_file("apiserver.key")),
    ]);
    let container = Container {
        name: APP.into(),
        image: Some(plan.images.kube_apiserver.clone()),
        command: Some(flags),
        env: Some(vec![o::field_env("POD_IP", "status.podIP")]),
        // No `ports`: on the host network any declared port becomes a hostPort, and the
        // kubelet would reject this pod while the bootstrap pod or the checkpoint holds
        // it (see `staticpod::drop_host_network_ports`).
        liveness_probe: Some(o::https_probe("/livez", port, 15)),
        readiness_probe: Some(o::https_probe("/readyz", port, 0)),
        resources: Some(requests("250m", "512Mi")),
        ..Default::default()
    };
    let mut template = template(APP, container, true, false);
    if let Some(spec) = template.spec.as_mut() {
        spec.host_network = Some(true);
        spec.priority_class_name = Some("system-node-critical".into());
        if plan.secure_port < 1024 {
            privileged_port(spec);
        }
    }
    let annotations = BTreeMap::from([(CHECKPOINT_ANNOTATION.to_string(), "true".to_string())]);
    let spec = template.spec.unwrap_or_default();
    let ds = o::daemon_set(APP, TIER, Some(annotations), spec);
    Component {
        file: format!("{APP}.yaml"),
        objects: vec![
            o::service_account(APP, false),
            Object::Secret(o::secret(APP, &data)),
            o::cluster_role_binding(
                "kubeboot:kube-apiserver-kubelet-client",
                "system:kubelet-api-admin",
                o::user_subject(pki::KUBELET_CLIENT_CN),
            ),
            ds,
        ],
    }
}

/// `manifests/kube-controller-manager.yaml`.
pub fn controller_manager(plan: &Plan, pki: &Pki) -> Component {
    const APP: &str = "kube-controller-manager";
    let flags = vec![
        "kube-controller-manager".to_string(),
        "--allocate-node-cidrs=true".into(),
        format!("--cluster-cidr={}", plan.pod_cidr),
        format!("--cluster-signing-cert-file={}", secret_file("ca.crt")),
        format!("--cluster-signing-key-file={}", secret_file("ca.key")),
        format!("--kubeconfig={IN_CLUSTER_DIR}/kubeconfig"),
        "--leader-elect=true".into(),
        PERMIT_PORT_SHARING.into(),
        format!("--root-ca-file={}", secret_file("ca.crt")),
        format!(
            "--service-account-private-key-file={}",
            secret_file("service-account.key")
        ),
        format!("--service-cluster-ip-range={}", plan.service_cidr),
        "--use-service-account-credentials=true".into(),
    ];
    let container = Container {
        name: APP.into(),
        image: Some(plan.images.kube_controller_manager.clone()),
        command: Some(flags),
        liveness_probe: Some(o::https_probe("/healthz", 10257, 15)),
        resources: Some(requests("200m", "256Mi")),
        ..Default::default()
    };
    let data: [(&str, &str); 3] = [
        ("ca.crt", &pki.ca.cert_pem),
        ("ca.key", &pki.ca.key_pem),
        ("service-account.key", &pki.service_account_key_pem),
    ];
    Component {
        file: format!("{APP}.yaml"),
        objects: vec![
            o::service_account(APP, true),
            Object::Secret(o::secret(APP, &data)),
            o::cluster_role_binding(
                "kubeboot:kube-controller-manager",
                "system:kube-controller-manager",
                o::sa_subject(APP),
            ),
            deployment(APP, template(APP, container, true, true)),
        ],
    }
}

/// `manifests/kube-scheduler.yaml`.
pub fn scheduler(plan: &Plan) -> Component {
    const APP: &str = "kube-scheduler";
    let flags = vec![
        "kube-scheduler".to_string(),
        format!("--kubeconfig={IN_CLUSTER_DIR}/kubeconfig"),
        "--leader-elect=true".into(),
        PERMIT_PORT_SHARING.into(),
    ];
    let container = Container {
        name: APP.into(),
        image: Some(plan.images.kube_scheduler.clone()),
        command: Some(flags),
        liveness_probe: Some(o::https_probe("/healthz", 10259, 15)),
        resources: Some(requests("100m", "128Mi")),
        ..Default::default()
    };
    Component {
        file: format!("{APP}.yaml"),
        objects: vec![
            o::service_account(APP, true),
            o::cluster_role_binding(
                "kubeboot:kube-scheduler",
                "system:kube-scheduler",
                o::sa_subject(APP),
            ),
            o::cluster_role_binding(
                "kubeboot:volume-scheduler",
                "system:volume-scheduler",
                o::sa_subject(APP),
            ),
            deployment(APP, template(APP, container, false, true)),
        ],
    }
}
