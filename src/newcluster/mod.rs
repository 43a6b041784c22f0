//! `kubeboot render`: a brand-new self-hosted cluster, as an [`AssetDir`].
//!
//! A new cluster is built as the same [`ControlPlane`] a recovery reads back from etcd
//! (typed DaemonSets, Deployments, Secrets and ConfigMaps) and handed to
//! [`render::render`], so a rendered cluster and a recovered one boot through exactly
//! the same bootstrap pods and `tls/` files; a bug in that path shows up on the first
//! boot of every cluster, not on its first disaster. On top of what `render` writes,
//! this module adds what only a new cluster needs:
//! - `manifests/`: every self-hosted object as YAML, one file per component (its
//!   ServiceAccount, Secret, ConfigMap, RBAC, then its workload), which `start`
//!   creates once the bootstrap api-server answers (`objects`, `control_plane`,
//!   `node_agents`, and with `--self-hosted-etcd` [`etcd`]);
//! - `tls/`: the PKI as files for the operator ([`pki`]);
//! - `auth/kubeconfig`: the admin kubeconfig, and `auth/kubelets/<node>.kubeconfig`, one
//!   per `--node-names` kubelet (`kubeconfig`);
//! - in `kubeboot.json`, source kind `rendered` and the options under `new_cluster`.
//!
//! Determinism: keys and certs are random, and the render time is recorded; both live
//! in [`Pki`]. Everything else is a pure function of the options and the [`Pki`]:
//! [`render_with_pki`] with the same inputs gives byte-identical files.

mod assemble;
mod control_plane;
pub mod etcd;
mod kubeconfig;
mod net;
mod node_agents;
mod objects;
mod options;
pub mod pki;

use crate::model::{AssetDir, ControlPlane, SourceInfo, SourceKind};
use crate::render::{self, RenderError};
use objects::{Component, Object};
use options::Plan;
pub use options::{
    DEFAULT_API_SERVERS, DEFAULT_ETCD_SERVERS, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, Images,
    KUBERNETES_VERSION, NewClusterOptions,
};
pub use pki::Pki;

/// Why a new cluster could not be rendered. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum NewClusterError {
    #[error("{flag} {value:?}: {reason}")]
    Option {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot compute certificate validity from the clock: {0}")]
    Clock(String),
    #[error("generating {what}")]
    Pki {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot serialize {what}")]
    Serialize {
        what: String,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("cannot update kubeboot.json")]
    Report(#[source] serde_json::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("two parts of the new cluster write {0}")]
    Duplicate(String),
}

impl NewClusterError {
    /// Whether the options were wrong (exit code 2) rather than the rendering.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            NewClusterError::Option { .. } | NewClusterError::Render(RenderError::Options(_))
        )
    }
}

/// Renders a new cluster with a fresh PKI. See the module doc.
pub fn render_new(opts: &NewClusterOptions) -> Result<AssetDir, NewClusterError> {
    let pki = generate_pki(opts, jiff::Timestamp::now())?;
    render_with_pki(opts, &pki)
}

/// The PKI `opts` needs, issued at `now`.
pub fn generate_pki(
    opts: &NewClusterOptions,
    now: jiff::Timestamp,
) -> Result<Pki, NewClusterError> {
    let plan = Plan::new(opts)?;
    pki::generate(&plan.pki_request(), now)
}

/// Renders a new cluster around an existing PKI; deterministic.
pub fn render_with_pki(opts: &NewClusterOptions, pki: &Pki) -> Result<AssetDir, NewClusterError> {
    let plan = Plan::new(opts)?;
    let server = plan.server_url();
    let components = components(&plan, pki)?;
    let admin = kubeconfig::admin(&server, &pki.ca.cert_pem, &pki.admin)?;
    let cp = control_plane_of(&components, pki, admin.into_bytes());
    let mut out = render::render(&cp, &opts.render)?;
    assemble::add_files(&mut out, &components, pki, &server)?;
    assemble::finish_report(&mut out, &plan, opts)?;
    Ok(out)
}

/// Every component, in `manifests/` order.
fn components(plan: &Plan, pki: &Pki) -> Result<Vec<Component>, NewClusterError> {
    let in_cluster = kubeconfig::in_cluster(&plan.server_url())?;
    let etcd = match (&pki.etcd, plan.self_hosted_etcd) {
        (Some(etcd_pki), true) => Some(etcd::component(plan, etcd_pki)),
        _ => None,
    };
    let mut components = vec![
        Component {
            file: "00-namespace-kube-system.yaml".into(),
            objects: vec![objects::namespace()],
        },
        Component {
            file: "01-kubeconfig-in-cluster.yaml".into(),
            objects: vec![Object::ConfigMap(objects::config_map(
                objects::IN_CLUSTER_CM,
                &[("kubeconfig", in_cluster)],
            ))],
        },
        control_plane::apiserver(plan, pki),
        control_plane::controller_manager(plan, pki),
        control_plane::scheduler(plan),
        node_agents::kube_proxy(plan)?,
        node_agents::checkpointer(plan),
    ];
    // Before the api-server, which cannot start without it.
    if let Some(etcd) = etcd {
        components.insert(2, etcd);
    }
    Ok(components)
}

/// The [`ControlPlane`] `render` turns into bootstrap pods and `tls/` files.
fn control_plane_of(components: &[Component], pki: &Pki, kubeconfig: Vec<u8>) -> ControlPlane {
    let mut cp = ControlPlane {
        source: SourceInfo {
            kind: SourceKind::Rendered,
            location: "kubeboot render".into(),
            revision: None,
            integrity: None,
            sha256: None,
            size: None,
            read_at: pki.issued_at.to_string(),
        },
        daemonsets: vec![],
        deployments: vec![],
        secrets: vec![],
        config_maps: vec![],
        kubeconfig: Some(kubeconfig),
        warnings: vec![],
        unknown_fields: vec![],
    };
    for object in components.iter().flat_map(|c| &c.objects) {
        match object {
            Object::DaemonSet(d) => cp.daemonsets.push(d.clone()),
            Object::Deployment(d) => cp.deployments.push(d.clone()),
            Object::Secret(s) => cp.secrets.push(s.clone()),
            Object::ConfigMap(c) => cp.config_maps.push(c.clone()),
            _ => {}
        }
    }
    // All in kube-system: the name orders them as a source would.
    cp.daemonsets
        .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    cp.deployments
        .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    cp.secrets
        .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    cp.config_maps
        .sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    cp
}
