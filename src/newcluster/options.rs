//! What `kubeboot render` is asked for, and its checks.
//!
//! [`NewClusterOptions`] holds the flags as given; [`Plan`] is them parsed and checked
//! (every URL, CIDR and image), so each problem is a usage error naming its flag
//! before any key is generated, and the object builders get typed values.

use super::NewClusterError;
use super::net::{self, Cidr, Endpoint, Host, Scheme};
use super::pki;
use crate::certs::Lifetime;
use crate::render::RenderOptions;

pub const DEFAULT_API_SERVERS: &str = "https://127.0.0.1:6443";
pub const DEFAULT_POD_CIDR: &str = "10.2.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.3.0.0/24";
pub const DEFAULT_ETCD_SERVERS: &str = "http://127.0.0.1:2379";
/// Leaf certs: a year, as kubeadm's.
pub const DEFAULT_CERT_VALIDITY: Lifetime = Lifetime::Years(1);
/// CAs: ten years, as kubeadm's.
pub const DEFAULT_CA_VALIDITY: Lifetime = Lifetime::Years(10);
/// The etcd of `--self-hosted-etcd`: the release Kubernetes 1.35 is tested with.
pub const DEFAULT_ETCD_IMAGE: &str = "registry.k8s.io/etcd:3.5.21-0";
/// The Kubernetes release the default images and the manifests target.
pub const KUBERNETES_VERSION: &str = "v1.35.0";

/// The images of the new cluster, each overridable by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub kube_apiserver: String,
    pub kube_controller_manager: String,
    pub kube_scheduler: String,
    pub kube_proxy: String,
    /// The kubeboot image, which runs `kubeboot checkpoint`.
    pub pod_checkpointer: String,
    /// etcd, with `--self-hosted-etcd` (`etcdutl`/`etcdctl` from it restore backups).
    pub etcd: String,
}

impl Default for Images {
    fn default() -> Self {
        let k8s = |name: &str| format!("registry.k8s.io/{name}:{KUBERNETES_VERSION}");
        Images {
            kube_apiserver: k8s("kube-apiserver"),
            kube_controller_manager: k8s("kube-controller-manager"),
            kube_scheduler: k8s("kube-scheduler"),
            kube_proxy: k8s("kube-proxy"),
            pod_checkpointer: format!("quay.io/kubeboot/kubeboot:v{}", env!("CARGO_PKG_VERSION")),
            etcd: DEFAULT_ETCD_IMAGE.into(),
        }
    }
}

impl Images {
    /// The names `--images NAME=IMAGE` accepts.
    pub const NAMES: [&'static str; 6] = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "pod-checkpointer",
        "etcd",
    ];

    /// Applies one `NAME=IMAGE` override.
    pub fn set(&mut self, spec: &str) -> Result<(), NewClusterError> {
        let bad = |reason: String| NewClusterError::Option {
            flag: "--images",
            value: spec.to_string(),
            reason,
        };
        let (name, image) = spec
            .split_once('=')
            .ok_or_else(|| bad("must be NAME=IMAGE".into()))?;
        if image.is_empty() || image.contains(char::is_whitespace) || image.contains("://") {
            return Err(bad(format!("{image:?} is not an image reference")));
        }
        let slot = match name {
            "kube-apiserver" => &mut self.kube_apiserver,
            "kube-controller-manager" => &mut self.kube_controller_manager,
            "kube-scheduler" => &mut self.kube_scheduler,
            "kube-proxy" => &mut self.kube_proxy,
            "pod-checkpointer" => &mut self.pod_checkpointer,
            "etcd" => &mut self.etcd,
            _ => {
                return Err(bad(format!(
                    "unknown name {name:?}; use one of {}",
                    Self::NAMES.join(", ")
                )));
            }
        };
        *slot = image.to_string();
        Ok(())
    }
}

/// What `kubeboot render` is asked for. `Default` is the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClusterOptions {
    /// URLs the api-server is reached at; the first goes into the kubeconfigs and
    /// gives the api-server's `--secure-port`; all go into its serving cert.
    pub api_servers: Vec<String>,
    pub pod_cidr: String,
    pub service_cidr: String,
    /// External etcd; https gets a generated etcd PKI under `tls/etcd/`. With
    /// `self_hosted_etcd` it must be empty or the default (it is not used).
    pub etcd_servers: Vec<String>,
    /// Run a one-member etcd as the `kube-system/etcd` DaemonSet (see `etcd.rs`);
    /// needs exactly one api-server host, whose address etcd is reached at.
    pub self_hosted_etcd: bool,
    pub images: Images,
    /// Node names of the masters whose kubelets get a credential of their own
    /// (`auth/kubelets/<name>.kubeconfig`, as `system:node:<name>`).
    pub node_names: Vec<String>,
    /// Host paths baked into the bootstrap pods.
    pub render: RenderOptions,
    /// How long the leaf certs are valid (`--cert-validity`), and the CAs
    /// (`--ca-validity`); a leaf may not outlive its CA.
    pub cert_validity: Lifetime,
    pub ca_validity: Lifetime,
}

impl Default for NewClusterOptions {
    fn default() -> Self {
        NewClusterOptions {
            api_servers: vec![DEFAULT_API_SERVERS.into()],
            pod_cidr: DEFAULT_POD_CIDR.into(),
            service_cidr: DEFAULT_SERVICE_CIDR.into(),
            etcd_servers: vec![DEFAULT_ETCD_SERVERS.into()],
            self_hosted_etcd: false,
            images: Images::default(),
            node_names: Vec::new(),
            render: RenderOptions::default(),
            cert_validity: DEFAULT_CERT_VALIDITY,
            ca_validity: DEFAULT_CA_VALIDITY,
        }
    }
}

/// The options, checked and parsed.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub(super) api_servers: Vec<Endpoint>,
    pub(super) secure_port: u16,
    pub(super) pod_cidr: Cidr,
    pub(super) service_cidr: Cidr,
    pub(super) etcd_servers: Vec<Endpoint>,
    pub(super) self_hosted_etcd: bool,
    pub(super) images: Images,
    pub(super) node_names: Vec<String>,
    pub(super) cert_validity: Lifetime,
    pub(super) ca_validity: Lifetime,
}

impl Plan {
    pub(super) fn new(opts: &NewClusterOptions) -> Result<Plan, NewClusterError> {
        let endpoints = |flag: &'static str, list: &[String]| {
            if list.is_empty() {
                return Err(NewClusterError::Option {
                    flag,
                    value: String::new(),
                    reason: "give at least one URL".into(),
                });
            }
            list.iter()
                .map(|u| net::parse_endpoint(flag, u))
                .collect::<Result<Vec<_>, _>>()
        };
        let api_servers = endpoints("--api-servers", &opts.api_servers)?;
        if let Some((e, raw)) = api_servers
            .iter()
            .zip(&opts.api_servers)
            .find(|(e, _)| e.scheme != Scheme::Https)
        {
            return Err(option(
                "--api-servers",
                raw,
                format!("{e}: the api-server serves https only"),
            ));
        }
        let etcd_servers = if opts.self_hosted_etcd {
            self_hosted_etcd_servers(opts, &api_servers)?
        } else {
            endpoints("--etcd-servers", &opts.etcd_servers)?
        };
        let first_scheme = etcd_servers.first().map(|e| e.scheme);
        if etcd_servers.iter().any(|e| Some(e.scheme) != first_scheme) {
            return Err(option(
                "--etcd-servers",
                &opts.etcd_servers.join(","),
                "mixes http and https".into(),
            ));
        }
        let service_cidr = Cidr::parse("--service-cidr", &opts.service_cidr, 2..=20)?;
        let pod_bits = if opts.pod_cidr.contains(':') {
            64..=80
        } else {
            8..=24
        };
        let pod_cidr = Cidr::parse("--pod-cidr", &opts.pod_cidr, pod_bits)?;
        if pod_cidr.is_ipv4() != service_cidr.is_ipv4() {
            return Err(option(
                "--pod-cidr",
                &opts.pod_cidr,
                format!("is not the same IP family as --service-cidr {service_cidr}"),
            ));
        }
        if pod_cidr.overlaps(&service_cidr) {
            return Err(option(
                "--pod-cidr",
                &opts.pod_cidr,
                format!("overlaps --service-cidr {service_cidr}"),
            ));
        }
        if opts.self_hosted_etcd
            && let Some(v) = crate::render::image_version(&opts.images.etcd)
            && v < (3, 5)
        {
            return Err(option(
                "--images",
                &format!("etcd={}", opts.images.etcd),
                format!("Kubernetes {KUBERNETES_VERSION} needs etcd 3.5 or later"),
            ));
        }
        let node_names = node_names(&opts.node_names)?;
        if opts.cert_validity.approx_days() > opts.ca_validity.approx_days() {
            return Err(option(
                "--cert-validity",
                &opts.cert_validity.to_string(),
                format!(
                    "outlives the CA that signs it (--ca-validity {})",
                    opts.ca_validity
                ),
            ));
        }
        let secure_port = api_servers.first().map_or(6443, Endpoint::port_or_default);
        Ok(Plan {
            api_servers,
            secure_port,
            pod_cidr,
            service_cidr,
            etcd_servers,
            self_hosted_etcd: opts.self_hosted_etcd,
            images: opts.images.clone(),
            node_names,
            cert_validity: opts.cert_validity,
            ca_validity: opts.ca_validity,
        })
    }

    /// The URL kubeconfigs name: the first api-server.
    pub(super) fn server_url(&self) -> String {
        self.api_servers
            .first()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    pub(super) fn etcd_tls(&self) -> bool {
        self.etcd_servers.iter().all(|e| e.scheme == Scheme::Https)
    }

    pub(super) fn etcd_servers_flag(&self) -> String {
        let urls: Vec<String> = self.etcd_servers.iter().map(ToString::to_string).collect();
        urls.join(",")
    }

    pub(super) fn pki_request(&self) -> pki::PkiRequest {
        let hosts = |list: &[Endpoint]| list.iter().map(|e| e.host.clone()).collect::<Vec<_>>();
        pki::PkiRequest {
            apiserver_sans: pki::apiserver_sans(
                &hosts(&self.api_servers),
                self.service_cidr.first_host(),
            ),
            etcd_sans: self
                .etcd_tls()
                .then(|| pki::etcd_sans(&hosts(&self.etcd_servers))),
            node_names: self.node_names.clone(),
            cert_validity: self.cert_validity,
            ca_validity: self.ca_validity,
        }
    }
}

/// `--node-names`: each a node name (a lowercase RFC 1123 subdomain, as the api-server
/// validates `metadata.name` of a Node), none twice; it becomes a file name too.
fn node_names(list: &[String]) -> Result<Vec<String>, NewClusterError> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for name in list {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(option(
                "--node-names",
                name,
                "is not a node name (lowercase letters, digits, '-' and '.', as the kubelet registers it)".into(),
            ));
        }
        if out.contains(name) {
            return Err(option("--node-names", name, "is given twice".into()));
        }
        out.push(name.clone());
    }
    Ok(out)
}

/// With `--self-hosted-etcd`: the one etcd member, `https://<api-server host>:2379`.
/// See `etcd.rs` for why more than one host is refused.
fn self_hosted_etcd_servers(
    opts: &NewClusterOptions,
    api_servers: &[Endpoint],
) -> Result<Vec<Endpoint>, NewClusterError> {
    let default = [DEFAULT_ETCD_SERVERS.to_string()];
    if !opts.etcd_servers.is_empty() && opts.etcd_servers != default {
        return Err(option(
            "--etcd-servers",
            &opts.etcd_servers.join(","),
            "conflicts with --self-hosted-etcd, which runs etcd at the api-server's host".into(),
        ));
    }
    let mut hosts: Vec<&Host> = Vec::new();
    for e in api_servers {
        if !hosts.contains(&&e.host) {
            hosts.push(&e.host);
        }
    }
    match hosts.as_slice() {
        [host] => Ok(vec![Endpoint {
            scheme: Scheme::Https,
            host: (*host).clone(),
            port: Some(super::etcd::CLIENT_PORT),
        }]),
        _ => Err(option(
            "--api-servers",
            &opts.api_servers.join(","),
            "--self-hosted-etcd runs a one-member etcd on the api-server's host, and this names several hosts; \
             each master would start its own one-member etcd with its own data (a multi-member \
             self-hosted etcd is not supported): give one --api-servers host or an external --etcd-servers"
                .into(),
        )),
    }
}

fn option(flag: &'static str, value: &str, reason: String) -> NewClusterError {
    NewClusterError::Option {
        flag,
        value: value.to_string(),
        reason,
    }
}
