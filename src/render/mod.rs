//! `render`: turns a recovered [`ControlPlane`] into the [`AssetDir`] that `start` boots
//! from (docs/design.md §4), without any I/O.
//!
//! Each self-hosted control-plane DaemonSet/Deployment ([`select`]) becomes a static
//! bootstrap pod ([`pod`]); the Secrets and ConfigMaps it mounts become files under
//! `tls/` ([`volumes`]); the controller-manager and scheduler are pointed at the
//! operator's kubeconfig ([`kubeconfig_flag`]), which becomes `auth/kubeconfig`; and
//! `kubeboot.json` ([`report`]) records what was done and what is missing. A
//! self-hosted etcd restored from a backup also gets `etcd/` and a restore init
//! container ([`etcd`], [`render_with_backup`]).
//!
//! Pure and deterministic: the same control plane and options give byte-identical
//! files, so the three sources can be compared, and every decision is unit-tested
//! without a cluster. Where bootkube's transform was wrong (docs/bootkube-notes.md §5.3) the
//! submodule docs say what kubeboot does instead.

mod etcd;
mod etcd_tool;
mod flags;
mod kubeconfig_flag;
mod pod;
mod report;
mod select;
mod volumes;

pub use etcd::{
    EtcdBackup, RESTORE_ASSET, RESTORE_CONTAINER, RESTORE_HOST_SUBDIR, RESTORE_MOUNT,
    SNAPSHOT_ASSET,
};
pub use etcd_tool::{Member, RestoreTool, image_version, restore_command, restore_tool};
pub use pod::{
    ANNOTATION_PARENT, KUBECONFIG_MOUNT, KUBECONFIG_VOLUME, LABEL_BOOTSTRAP, LABEL_BOOTSTRAP_OF,
    LABEL_COMPONENT,
};
pub use report::KUBECONFIG_MISSING;
pub use select::{COMPONENTS, ETCD};

use crate::model::{AssetDir, ControlPlane, MODE_PUBLIC, MODE_SECRET};

/// Where `start` puts the asset dir's `tls/`, and the bootstrap pods look for it.
pub const DEFAULT_SECRETS_HOST_DIR: &str = "/etc/kubernetes/bootstrap-secrets";
/// Where `start` puts `auth/kubeconfig`.
pub const DEFAULT_KUBECONFIG_HOST_PATH: &str = "/etc/kubernetes/bootstrap-secrets/kubeconfig";

/// Host paths baked into the bootstrap pods; `start` must copy the assets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Host dir the bootstrap pods mount secrets/config-maps from (start copies tls/ there).
    pub secrets_host_dir: String,
    /// Host path of the kubeconfig the bootstrap pods use (start copies auth/kubeconfig there).
    /// Its directory is mounted read-only into the controller-manager and scheduler.
    pub kubeconfig_host_path: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            secrets_host_dir: DEFAULT_SECRETS_HOST_DIR.into(),
            kubeconfig_host_path: DEFAULT_KUBECONFIG_HOST_PATH.into(),
        }
    }
}

impl RenderOptions {
    /// Secrets and ConfigMaps under `secrets_host_dir`, and the kubeconfig at
    /// `kubeconfig` or else `<secrets_host_dir>/kubeconfig` (where `start` puts it).
    pub fn under(secrets_host_dir: &str, kubeconfig: Option<&str>) -> Self {
        RenderOptions {
            kubeconfig_host_path: kubeconfig
                .map_or_else(|| format!("{secrets_host_dir}/kubeconfig"), str::to_string),
            secrets_host_dir: secrets_host_dir.to_string(),
        }
    }

    fn validate(&self) -> Result<(), RenderError> {
        for (what, p) in [
            ("secrets_host_dir", &self.secrets_host_dir),
            ("kubeconfig_host_path", &self.kubeconfig_host_path),
        ] {
            let rel = p
                .strip_prefix('/')
                .unwrap_or_default()
                .trim_end_matches('/');
            if rel.is_empty() || volumes::check_rel_path(rel).is_err() {
                return Err(RenderError::Options(format!(
                    "{what} {p:?} must be a normalized absolute path below /"
                )));
            }
        }
        self.kubeconfig_split().map(|_| ())
    }

    /// The kubeconfig's host dir and file name.
    fn kubeconfig_split(&self) -> Result<(&str, &str), RenderError> {
        match self.kubeconfig_host_path.rsplit_once('/') {
            Some((dir, file)) if !dir.is_empty() && !file.is_empty() => Ok((dir, file)),
            _ => Err(RenderError::Options(format!(
                "kubeconfig_host_path {:?} must name a file in a directory below /",
                self.kubeconfig_host_path
            ))),
        }
    }
}

/// Says what the source held, so an empty one (another cluster, another prefix) reads
/// differently from one whose workloads lack the control plane's labels.
fn no_components(daemonsets: usize, deployments: usize) -> String {
    if daemonsets + deployments == 0 {
        "it holds no DaemonSet and no Deployment (is it this cluster's etcd, read with its --etcd-prefix?)".into()
    } else {
        format!(
            "of its {daemonsets} DaemonSet(s) and {deployments} Deployment(s), none has label k8s-app (or component) = kube-apiserver, kube-controller-manager, kube-scheduler or etcd"
        )
    }
}

/// Why a control plane could not be rendered. Each names the object at fault, and
/// never carries Secret data.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("nothing to recover in {location}: {}", no_components(*.daemonsets, *.deployments))]
    NoComponents {
        location: String,
        daemonsets: usize,
        deployments: usize,
    },
    #[error("{owner} mounts {kind} {name:?} which does not exist")]
    MissingObject {
        owner: String,
        kind: &'static str,
        name: String,
    },
    #[error("{owner} mounts key {key:?} of {kind} {name:?} which does not exist")]
    MissingKey {
        owner: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("{owner}: {what} {path:?} is not a safe relative path ({reason})")]
    UnsafePath {
        owner: String,
        what: &'static str,
        path: String,
        reason: &'static str,
    },
    #[error("{owner}: {what}, which a static bootstrap pod cannot use")]
    Unsupported { owner: String, what: String },
    #[error("{owner} and {other} put different contents at {path}")]
    Conflict {
        owner: String,
        other: String,
        path: String,
    },
    #[error("{owner}: {reason}")]
    Invalid { owner: String, reason: String },
    #[error("two control-plane objects render to the same {0}")]
    Duplicate(String),
    #[error("render options: {0}")]
    Options(String),
    #[error("{owner}: cannot serialize the bootstrap pod: {error}")]
    Serialize {
        owner: String,
        error: serde_yaml_ng::Error,
    },
    #[error("cannot serialize kubeboot.json: {0}")]
    Report(serde_json::Error),
}

/// Renders the asset dir for `cp`. See the module doc.
pub fn render(cp: &ControlPlane, opts: &RenderOptions) -> Result<AssetDir, RenderError> {
    render_with_backup(cp, opts, None)
}

/// Whether `cp` has a self-hosted etcd (a DaemonSet/Deployment labelled `k8s-app=etcd`),
/// which a backup would restore.
pub fn has_self_hosted_etcd(cp: &ControlPlane) -> bool {
    select::parents(cp, &mut Vec::new()).is_ok_and(|p| p.iter().any(|p| p.component == ETCD))
}

/// [`render`], and with a `backup` and a self-hosted etcd in `cp`, the restore of that
/// etcd from it ([`etcd`]). Without a self-hosted etcd the backup is not used.
pub fn render_with_backup(
    cp: &ControlPlane,
    opts: &RenderOptions,
    backup: Option<&EtcdBackup>,
) -> Result<AssetDir, RenderError> {
    opts.validate()?;
    let mut warnings = cp.warnings.clone();
    let parents = select::parents(cp, &mut warnings)?;
    if parents.is_empty() {
        return Err(RenderError::NoComponents {
            location: cp.source.location.clone(),
            daemonsets: cp.daemonsets.len(),
            deployments: cp.deployments.len(),
        });
    }
    let objects = volumes::Objects::new(&cp.secrets, &cp.config_maps);
    let mut files = volumes::Files::default();
    let mut out = AssetDir::default();
    let mut pods = Vec::with_capacity(parents.len());
    for parent in &parents {
        pods.push(pod::bootstrap_pod(
            parent,
            &objects,
            opts,
            &mut files,
            &mut warnings,
        )?);
    }
    files.into_assets(&mut out);
    if let Some(backup) = backup {
        etcd::restore(&parents, &mut pods, backup, opts, &mut out, &mut warnings)?;
    }
    for (parent, pod) in parents.iter().zip(&pods) {
        let yaml = serde_yaml_ng::to_string(pod).map_err(|source| RenderError::Serialize {
            owner: parent.to_string(),
            error: source,
        })?;
        let path = parent.manifest_path();
        if out.get(&path).is_some() {
            return Err(RenderError::Duplicate(path));
        }
        out.insert(path, yaml, MODE_PUBLIC);
    }
    if let Some(kubeconfig) = &cp.kubeconfig {
        out.insert("auth/kubeconfig", kubeconfig.clone(), MODE_SECRET);
    }
    // The report counts itself: every file `recover` writes and says it wrote.
    let report = report::build(cp, &parents, out.files.len() + 1, &warnings)?;
    out.insert(report::PATH, report, MODE_PUBLIC);
    Ok(out)
}

#[cfg(test)]
mod tests;
