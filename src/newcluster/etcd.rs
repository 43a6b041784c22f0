//! `--self-hosted-etcd`: etcd as a `kube-system/etcd` DaemonSet on the masters.
//!
//! Why a DaemonSet like the api-server: it is labelled `tier=control-plane,k8s-app=etcd`,
//! so `render` (the recovery renderer) turns it into `bootstrap-etcd`, the same static
//! pod a recovery boots, and the checkpointer keeps it alive across a reboot of every
//! master. Its data lives on the host (`/var/lib/etcd`, a hostPath), so a pod restart
//! or the pivot from `bootstrap-etcd` to the self-hosted pod keeps the data.
//!
//! One member only. Each pod names itself `$(NODE_NAME)` at `$(POD_IP)` and starts a
//! *new* one-member cluster, so two masters would each get their own etcd with its own
//! data: a split brain, not a cluster. Growing it (`member add`, `--initial-cluster-state
//! existing`) is out of scope, so `Plan` refuses `--self-hosted-etcd` with more than one
//! api-server host, and the api-server is pointed at `https://<that host>:2379`.
//!
//! TLS everywhere: client and peer URLs are https with client-cert auth, from the
//! Secret `etcd-tls` (etcd CA, server and peer certs); the api-server keeps its etcd
//! client cert in its own Secret, as for an external https etcd.

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe, SecurityContext, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::Plan;
use super::objects::{self as o, CHECKPOINT_ANNOTATION, Component, Object};
use super::pki::EtcdPki;

/// The DaemonSet, Secret and ServiceAccount name, and the `k8s-app` label.
pub const APP: &str = "etcd";
/// The Secret with etcd's CA, server and peer certs.
pub const TLS_SECRET: &str = "etcd-tls";
/// Where that Secret is mounted.
pub const TLS_DIR: &str = "/etc/kubernetes/etcd-tls";
/// etcd's data dir, in the container and on the host.
pub const DATA_DIR: &str = "/var/lib/etcd";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

fn tls(key: &str) -> String {
    format!("{TLS_DIR}/{key}")
}

/// etcd's command line; see the module doc.
fn flags() -> Vec<String> {
    let client = format!("https://$(POD_IP):{CLIENT_PORT}");
    let peer = format!("https://$(POD_IP):{PEER_PORT}");
    vec![
        "etcd".into(),
        "--name=$(NODE_NAME)".into(),
        format!("--data-dir={DATA_DIR}"),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=$(NODE_NAME)={peer}"),
        "--initial-cluster-state=new".into(),
        format!("--cert-file={}", tls("server.crt")),
        format!("--key-file={}", tls("server.key")),
        format!("--trusted-ca-file={}", tls("ca.crt")),
        "--client-cert-auth=true".into(),
        format!("--peer-cert-file={}", tls("peer.crt")),
        format!("--peer-key-file={}", tls("peer.key")),
        format!("--peer-trusted-ca-file={}", tls("ca.crt")),
        "--peer-client-cert-auth=true".into(),
    ]
}

/// `manifests/etcd.yaml`: its ServiceAccount (no token), the `etcd-tls` Secret and
/// the DaemonSet. Runs as root: the hostPath data dir is root-owned.
pub(super) fn component(plan: &Plan, pki: &EtcdPki) -> Component {
    let container = Container {
        name: APP.into(),
        image: Some(plan.images.etcd.clone()),
        command: Some(flags()),
        env: Some(vec![
            o::field_env("NODE_NAME", "spec.nodeName"),
            o::field_env("POD_IP", "status.podIP"),
        ]),
        // No `ports` on the host network (see `staticpod::drop_host_network_ports`).
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(CLIENT_PORT)),
                ..Default::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            o::mount("data", DATA_DIR, false),
            o::mount("tls", TLS_DIR, true),
        ]),
        ..Default::default()
    };
    let mut tls_volume = o::secret_volume("tls", TLS_SECRET);
    if let Some(s) = tls_volume.secret.as_mut() {
        s.default_mode = Some(0o400);
    }
    let mut spec = PodSpec {
        containers: vec![container],
        host_network: Some(true),
        priority_class_name: Some("system-node-critical".into()),
        service_account_name: Some(APP.into()),
        automount_service_account_token: Some(false),
        volumes: Some(vec![
            o::host_path_volume("data", DATA_DIR, "DirectoryOrCreate"),
            tls_volume,
        ]),
        ..Default::default()
    };
    o::on_masters(&mut spec);
    let annotations = BTreeMap::from([(CHECKPOINT_ANNOTATION.to_string(), "true".to_string())]);
    let data: [(&str, &str); 5] = [
        ("ca.crt", &pki.ca.cert_pem),
        ("peer.crt", &pki.peer.cert_pem),
        ("peer.key", &pki.peer.key_pem),
        ("server.crt", &pki.server.cert_pem),
        ("server.key", &pki.server.key_pem),
    ];
    Component {
        file: format!("{APP}.yaml"),
        objects: vec![
            o::service_account(APP, false),
            Object::Secret(o::secret(TLS_SECRET, &data)),
            o::daemon_set(APP, "control-plane", Some(annotations), spec),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::super::net::Host;
    use super::super::{NewClusterOptions, render_new};
    use super::*;

    fn self_hosted(api_servers: &[&str]) -> NewClusterOptions {
        NewClusterOptions {
            api_servers: api_servers.iter().map(|s| s.to_string()).collect(),
            etcd_servers: vec![],
            self_hosted_etcd: true,
            ..NewClusterOptions::default()
        }
    }

    #[test]
    fn etcd_is_at_the_api_server_host_with_its_sans() {
        let plan = Plan::new(&self_hosted(&["https://10.0.0.5:6443", "https://10.0.0.5"])).unwrap();
        assert_eq!(plan.etcd_servers_flag(), "https://10.0.0.5:2379");
        let sans = plan.pki_request().etcd_sans.unwrap();
        let ip = |s: &str| Host::Ip(s.parse().unwrap());
        assert_eq!(
            sans,
            [
                ip("10.0.0.5"),
                Host::Dns("localhost".into()),
                ip("127.0.0.1")
            ]
        );
        // The documented default is "not given".
        let mut opts = self_hosted(&["https://[fd00::1]:6443"]);
        opts.etcd_servers = vec![crate::newcluster::DEFAULT_ETCD_SERVERS.into()];
        assert_eq!(
            Plan::new(&opts).unwrap().etcd_servers_flag(),
            "https://[fd00::1]:2379"
        );
    }

    #[test]
    fn refusals_are_usage_errors() {
        let mut with_servers = self_hosted(&["https://10.0.0.5:6443"]);
        with_servers.etcd_servers = vec!["https://10.0.0.9:2379".into()];
        for (opts, needle) in [
            (
                with_servers,
                "--etcd-servers \"https://10.0.0.9:2379\": conflicts with --self-hosted-etcd",
            ),
            (
                {
                    let mut old = self_hosted(&["https://10.0.0.5:6443"]);
                    old.images.etcd = "quay.io/coreos/etcd:v3.4.13".into();
                    old
                },
                "needs etcd 3.5 or later",
            ),
            (
                self_hosted(&["https://10.0.0.5:6443", "https://10.0.0.6:6443"]),
                "a multi-member self-hosted etcd is not supported",
            ),
        ] {
            let err = Plan::new(&opts).unwrap_err();
            assert!(err.is_usage(), "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle:?}");
        }
    }

    #[test]
    fn render_gives_the_daemonset_its_secret_and_bootstrap_etcd() {
        let mut opts = self_hosted(&["https://10.0.0.5:6443"]);
        opts.images.set("etcd=example.com/etcd:v3.5.9").unwrap();
        let a = render_new(&opts).unwrap();
        let text = |p: &str| String::from_utf8(a.get(p).unwrap().bytes.clone()).unwrap();
        let manifest = text("manifests/etcd.yaml");
        for want in [
            "kind: DaemonSet",
            "k8s-app: etcd",
            "tier: control-plane",
            "checkpointer.alpha.coreos.com/checkpoint: 'true'",
            "name: etcd-tls",
            "image: example.com/etcd:v3.5.9",
            "path: /var/lib/etcd",
            "type: DirectoryOrCreate",
            "node-role.kubernetes.io/control-plane",
        ] {
            assert!(
                manifest.contains(want),
                "manifests/etcd.yaml lacks {want:?}"
            );
        }
        let boot = text("bootstrap-manifests/bootstrap-etcd.yaml");
        assert!(boot.contains("kubeboot.io/parent: DaemonSet/kube-system/etcd"));
        assert!(boot.contains("path: /etc/kubernetes/bootstrap-secrets/secrets/etcd-tls"));
        assert!(
            !boot.contains("initContainers"),
            "a new cluster restores nothing"
        );
        for key in ["ca.crt", "server.crt", "server.key", "peer.crt", "peer.key"] {
            assert!(
                a.get(&format!("tls/secrets/etcd-tls/{key}")).is_some(),
                "{key}"
            );
        }
        let apiserver = text("bootstrap-manifests/bootstrap-kube-apiserver.yaml");
        assert!(apiserver.contains("--etcd-servers=https://10.0.0.5:2379"));
        assert!(apiserver.contains("--etcd-certfile=/etc/kubernetes/secrets/etcd-client.crt"));
        assert!(a.files.keys().all(|k| !k.starts_with("etcd/")));
    }

    #[test]
    fn flags_are_the_start_contract() {
        let f = flags();
        for want in [
            "--name=$(NODE_NAME)",
            "--data-dir=/var/lib/etcd",
            "--listen-client-urls=https://$(POD_IP):2379",
            "--advertise-client-urls=https://$(POD_IP):2379",
            "--listen-peer-urls=https://$(POD_IP):2380",
            "--initial-advertise-peer-urls=https://$(POD_IP):2380",
            "--initial-cluster=$(NODE_NAME)=https://$(POD_IP):2380",
            "--initial-cluster-state=new",
            "--cert-file=/etc/kubernetes/etcd-tls/server.crt",
            "--key-file=/etc/kubernetes/etcd-tls/server.key",
            "--trusted-ca-file=/etc/kubernetes/etcd-tls/ca.crt",
            "--client-cert-auth=true",
            "--peer-cert-file=/etc/kubernetes/etcd-tls/peer.crt",
            "--peer-key-file=/etc/kubernetes/etcd-tls/peer.key",
            "--peer-trusted-ca-file=/etc/kubernetes/etcd-tls/ca.crt",
            "--peer-client-cert-auth=true",
        ] {
            assert!(f.iter().any(|a| a == want), "missing {want}");
        }
        assert_eq!(f.first().map(String::as_str), Some("etcd"));
    }
}
