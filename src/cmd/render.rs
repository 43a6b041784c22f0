//! `kubeboot render`: the operator gets the asset dir of a brand-new self-hosted
//! cluster (PKI, kubeconfig, bootstrap and self-hosted manifests), ready for
//! `kubeboot start`, as `bootkube render` gave. The work is in `newcluster`; this
//! maps flags to options and errors to exit codes.

use std::path::PathBuf;

use clap::Args;

use super::{Exit, Failure, usage};
use crate::assets::{self, AssetsError};
use crate::newcluster::{self, Images, NewClusterOptions};
use crate::render::RenderOptions;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Where to write the asset dir. Must be absent or empty unless --force.
    #[arg(long, value_name = "DIR")]
    pub asset_dir: PathBuf,
    /// URLs the api-server is reached at (comma-separated). The first goes into the
    /// kubeconfigs and sets the api-server's port; all go into its serving cert.
    #[arg(long, value_name = "URLS", value_delimiter = ',', default_value = newcluster::DEFAULT_API_SERVERS)]
    pub api_servers: Vec<String>,
    /// The pod network; each node gets a /24 (IPv4) or /64 (IPv6) of it.
    #[arg(long, value_name = "CIDR", default_value = newcluster::DEFAULT_POD_CIDR)]
    pub pod_cidr: String,
    /// The service network; its first address is the `kubernetes` service.
    #[arg(long, value_name = "CIDR", default_value = newcluster::DEFAULT_SERVICE_CIDR)]
    pub service_cidr: String,
    /// etcd client URLs (comma-separated). With https, an etcd CA and server, peer and
    /// client certs are generated under tls/etcd/.
    #[arg(long, value_name = "URLS", value_delimiter = ',', default_value = newcluster::DEFAULT_ETCD_SERVERS)]
    pub etcd_servers: Vec<String>,
    /// Run a one-member etcd inside the cluster: the kube-system/etcd DaemonSet (and a
    /// bootstrap-etcd pod) on the api-server's host, https on port 2379 at the node's
    /// IP, so the --api-servers host must be the master's node IP (or resolve to it).
    /// Needs exactly one --api-servers host: a multi-member self-hosted etcd is not
    /// supported.
    #[arg(long, conflicts_with = "etcd_servers")]
    pub self_hosted_etcd: bool,
    /// Image overrides, comma-separated NAME=IMAGE; NAME is kube-apiserver,
    /// kube-controller-manager, kube-scheduler, kube-proxy, pod-checkpointer or etcd.
    #[arg(long, value_name = "NAME=IMAGE", value_delimiter = ',')]
    pub images: Vec<String>,
    /// Masters whose kubelets get their own credential, auth/kubelets/NAME.kubeconfig
    /// (user system:node:NAME, group system:nodes), as the Node authorizer and
    /// NodeRestriction expect; each NAME is the node name its kubelet registers.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub node_names: Vec<String>,
    /// How long the leaf certs (api-server, clients, kubelets, etcd) are valid: days
    /// (90d) or years (2y). `kubeboot certs check` tells when they run out.
    #[arg(long, default_value = "1y", value_parser = crate::certs::parse_lifetime, value_name = "LIFETIME")]
    pub cert_validity: crate::certs::Lifetime,
    /// How long the CAs are valid; the leaf certs may not outlive them.
    #[arg(long, default_value = "10y", value_parser = crate::certs::parse_lifetime, value_name = "LIFETIME")]
    pub ca_validity: crate::certs::Lifetime,
    /// Move a non-empty --asset-dir aside (timestamped) instead of refusing.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: super::OutputFlag,
    /// Host dir the bootstrap pods mount Secrets and ConfigMaps from.
    #[arg(
        long,
        default_value = crate::render::DEFAULT_SECRETS_HOST_DIR,
        value_name = "DIR"
    )]
    pub bootstrap_secrets_dir: String,
    /// Host path of the kubeconfig the bootstrap pods use
    /// [default: kubeconfig in --bootstrap-secrets-dir].
    #[arg(long, value_name = "FILE")]
    pub bootstrap_kubeconfig: Option<String>,
}

fn options(args: &RenderArgs) -> Result<NewClusterOptions, newcluster::NewClusterError> {
    let mut images = Images::default();
    for spec in &args.images {
        images.set(spec)?;
    }
    Ok(NewClusterOptions {
        api_servers: args.api_servers.clone(),
        pod_cidr: args.pod_cidr.clone(),
        service_cidr: args.service_cidr.clone(),
        // The default does not apply: etcd is at the api-server's host.
        etcd_servers: if args.self_hosted_etcd {
            vec![]
        } else {
            args.etcd_servers.clone()
        },
        self_hosted_etcd: args.self_hosted_etcd,
        images,
        node_names: args.node_names.clone(),
        render: RenderOptions::under(
            &args.bootstrap_secrets_dir,
            args.bootstrap_kubeconfig.as_deref(),
        ),
        cert_validity: args.cert_validity,
        ca_validity: args.ca_validity,
    })
}

fn failure(e: newcluster::NewClusterError) -> Failure {
    let code = if e.is_usage() {
        Exit::Usage
    } else {
        Exit::Failed
    };
    Failure {
        code,
        error: e.into(),
    }
}

/// What `render -o json|yaml` prints (docs/cli.md).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RenderReport<'a> {
    asset_dir: String,
    moved_aside: Option<String>,
    /// Every file of the asset dir, `kubeboot.json` included.
    files: usize,
    api_servers: &'a [String],
    /// `auth/kubelets/<node>.kubeconfig`, one per `--node-names` master.
    kubelet_kubeconfigs: Vec<String>,
    next: String,
}

fn refused(dir: &std::path::Path) -> Failure {
    usage(format!(
        "refusing to write into non-empty --asset-dir {} (use --force)",
        dir.display()
    ))
}

pub fn run(args: RenderArgs) -> Result<(), Failure> {
    let opts = options(&args).map_err(failure)?;
    // Options are checked before the target: rendering is pure and takes milliseconds.
    let rendered = newcluster::render_new(&opts).map_err(failure)?;
    let moved = match assets::write(&args.asset_dir, &rendered, args.force) {
        Err(AssetsError::NotEmpty(_)) => return Err(refused(&args.asset_dir)),
        Err(e @ AssetsError::NotADir(_)) => return Err(usage(e)),
        other => other?,
    };
    let dir = args.asset_dir.display();
    let mut lines = Vec::new();
    if let Some(old) = &moved {
        lines.push(format!(
            "moved the previous {dir} aside to {}",
            old.display()
        ));
    }
    let next = format!("kubeboot start --asset-dir {dir}");
    lines.push(format!(
        "rendered a new cluster into {dir} ({} files) for {}",
        rendered.files.len(),
        opts.api_servers.join(",")
    ));
    lines.push(format!("next: {next}"));
    let report = RenderReport {
        asset_dir: dir.to_string(),
        moved_aside: moved.map(|p| p.display().to_string()),
        files: rendered.files.len(),
        api_servers: &opts.api_servers,
        kubelet_kubeconfigs: rendered
            .files
            .keys()
            .filter(|p| p.starts_with("auth/kubelets/"))
            .cloned()
            .collect(),
        next,
    };
    args.output.emit(&lines, &report)?;
    Ok(())
}
