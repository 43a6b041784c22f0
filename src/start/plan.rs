//! What `start` will do, read from the asset dir and checked before anything on the node
//! is touched: a missing kubeconfig, a bootstrap manifest that is not a Pod, or a
//! `manifests/` file that is not YAML stops `start` with nothing installed.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use sha2::Digest;

use super::manifests::{self, Phases};
use crate::render::{ANNOTATION_PARENT, LABEL_BOOTSTRAP_OF, RESTORE_ASSET};

/// The self-hosted object a bootstrap pod stands in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// `DaemonSet` or `Deployment`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One file of `bootstrap-manifests/`.
#[derive(Debug, Clone)]
pub struct BootstrapPod {
    pub file: String,
    pub bytes: Vec<u8>,
    pub pod_name: String,
    pub namespace: String,
    /// `None` for a bootstrap pod with no self-hosted twin (nothing to pivot to).
    pub parent: Option<Parent>,
}

impl BootstrapPod {
    /// The name used in progress lines: the parent's, else the pod's.
    pub fn component(&self) -> &str {
        self.parent.as_ref().map_or(&self.pod_name, |p| &p.name)
    }
}

/// `etcd/restore.json`: a self-hosted etcd to restore from `etcd/snapshot.db`. Paths
/// are absolute (the JSON's are relative to the asset dir), `data_dir` is a host path.
#[derive(Debug, Clone)]
pub struct EtcdRestore {
    pub snapshot: PathBuf,
    pub sha256: String,
    pub revision: i64,
    pub data_dir: PathBuf,
    pub etcd_servers: Vec<String>,
    pub client_ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The restore tool already moved the revision on (`--bump-revision`).
    pub revision_bumped: bool,
}

#[derive(serde::Deserialize)]
struct RestoreJson {
    snapshot: String,
    sha256: String,
    revision: i64,
    data_dir: String,
    etcd_servers: Vec<String>,
    client_ca: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    #[serde(default)]
    revision_bumped: bool,
}

/// Everything `start` needs from an asset dir.
#[derive(Debug)]
pub struct Plan {
    pub asset_dir: PathBuf,
    /// The kubeconfig `start` itself uses (`--kubeconfig`, else `auth/kubeconfig`).
    pub kubeconfig_path: PathBuf,
    /// `auth/kubeconfig`: what the bootstrap pods get, whatever `--kubeconfig` says.
    pub kubeconfig: Vec<u8>,
    pub tls_dir: PathBuf,
    pub bootstrap: Vec<BootstrapPod>,
    /// `None` when there is no `manifests/` (a recovered cluster: the objects are
    /// still in etcd).
    pub manifests: Option<Phases>,
    /// `etcd/` when the asset dir restores a self-hosted etcd.
    pub etcd_dir: Option<PathBuf>,
    pub etcd_restore: Option<EtcdRestore>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Manifests(#[from] manifests::ManifestError),
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> PlanError {
    PlanError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads and checks `asset_dir`. `kubeconfig` overrides `auth/kubeconfig` for `start`'s
/// own requests only: the bootstrap pods always get the asset dir's.
pub fn read(asset_dir: &Path, kubeconfig_override: Option<&Path>) -> Result<Plan, PlanError> {
    if !asset_dir.is_dir() {
        return Err(file_err(asset_dir, "asset dir does not exist"));
    }
    let own = asset_dir.join("auth/kubeconfig");
    let kubeconfig = fs::read(&own).map_err(|e| file_err(&own, e))?;
    let kubeconfig_path = kubeconfig_override.map_or(own, Path::to_path_buf);
    let bootstrap = read_bootstrap(&asset_dir.join("bootstrap-manifests"))?;
    let manifests_dir = asset_dir.join("manifests");
    let manifests = if manifests_dir.is_dir() {
        Some(manifests::phases(manifests::load_dir(&manifests_dir)?))
    } else {
        None
    };
    let etcd_dir = asset_dir.join("etcd");
    let etcd_restore = read_restore(asset_dir, &asset_dir.join(RESTORE_ASSET))?;
    if etcd_restore.is_some() && !plan_has_etcd(&bootstrap) {
        return Err(file_err(
            &etcd_dir,
            "an etcd restore but no bootstrap-manifests/ pod of the etcd component",
        ));
    }
    Ok(Plan {
        etcd_dir: etcd_restore.as_ref().map(|_| etcd_dir),
        etcd_restore,
        asset_dir: asset_dir.to_path_buf(),
        kubeconfig_path,
        kubeconfig,
        tls_dir: asset_dir.join("tls"),
        bootstrap,
        manifests,
    })
}

pub use crate::render::ETCD;

fn plan_has_etcd(bootstrap: &[BootstrapPod]) -> bool {
    bootstrap.iter().any(|b| b.component() == ETCD)
}

/// Reads `etcd/restore.json` and checks the snapshot it names against its sha256, so
/// a damaged or swapped backup stops `start` before the old data dir is moved aside.
fn read_restore(asset_dir: &Path, path: &Path) -> Result<Option<EtcdRestore>, PlanError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(path, e)),
    };
    let j: RestoreJson = serde_json::from_slice(&text).map_err(|e| file_err(path, e))?;
    let abs = |rel: &str| asset_dir.join(rel);
    let snapshot = abs(&j.snapshot);
    let bytes = fs::read(&snapshot).map_err(|e| file_err(&snapshot, e))?;
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    if !sha.eq_ignore_ascii_case(&j.sha256) {
        return Err(file_err(
            &snapshot,
            format!("sha256 is {sha}, but restore.json expects {}", j.sha256),
        ));
    }
    if j.etcd_servers.is_empty() {
        return Err(file_err(path, "etcd_servers is empty"));
    }
    Ok(Some(EtcdRestore {
        snapshot,
        sha256: sha,
        revision: j.revision,
        data_dir: PathBuf::from(j.data_dir),
        etcd_servers: j.etcd_servers,
        client_ca: j.client_ca.as_deref().map(abs),
        client_cert: j.client_cert.as_deref().map(abs),
        client_key: j.client_key.as_deref().map(abs),
        revision_bumped: j.revision_bumped,
    }))
}

fn read_bootstrap(dir: &Path) -> Result<Vec<BootstrapPod>, PlanError> {
    let entries = fs::read_dir(dir).map_err(|e| file_err(dir, e))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| file_err(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(file_err(dir, "no bootstrap manifests"));
    }
    files.iter().map(|p| bootstrap_pod(p)).collect()
}

fn bootstrap_pod(path: &Path) -> Result<BootstrapPod, PlanError> {
    let bytes = fs::read(path).map_err(|e| file_err(path, e))?;
    let pod: Pod = serde_yaml_ng::from_slice(&bytes)
        .map_err(|e| file_err(path, format!("not a Pod manifest: {e}")))?;
    let meta = &pod.metadata;
    let pod_name = meta
        .name
        .clone()
        .ok_or_else(|| file_err(path, "metadata.name is missing"))?;
    let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Err(file_err(path, "the pod has no containers"));
    }
    let parent = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_PARENT))
        .and_then(|p| parse_parent(p))
        .or_else(|| {
            // An asset dir from bootkube: `bootstrap-<parent>` pods without annotations.
            let of = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_BOOTSTRAP_OF))
                .cloned();
            of.or_else(|| pod_name.strip_prefix("bootstrap-").map(str::to_string))
                .map(|name| Parent {
                    kind: String::new(),
                    namespace: namespace.clone(),
                    name,
                })
        });
    Ok(BootstrapPod {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        pod_name,
        namespace,
        parent,
    })
}

/// `Kind/namespace/name`, as the renderer writes `kubeboot.io/parent`.
fn parse_parent(s: &str) -> Option<Parent> {
    let mut it = s.splitn(3, '/');
    let (kind, namespace, name) = (it.next()?, it.next()?, it.next()?);
    (!kind.is_empty() && !namespace.is_empty() && !name.is_empty()).then(|| Parent {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bootstrap-kube-apiserver\n  namespace: kube-system\n  annotations:\n    kubeboot.io/parent: DaemonSet/kube-system/kube-apiserver\nspec:\n  containers:\n  - name: a\n    image: i\n";

    #[test]
    fn reads_bootstrap_pods_with_their_parents() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "auth/kubeconfig", "kc");
        write(
            t.path(),
            "bootstrap-manifests/bootstrap-kube-apiserver.yaml",
            POD,
        );
        write(t.path(), "bootstrap-manifests/.hidden.yaml", "not: [yaml");
        let plan = read(t.path(), None).unwrap();
        assert_eq!(plan.bootstrap.len(), 1);
        let b = &plan.bootstrap[0];
        assert_eq!(b.component(), "kube-apiserver");
        assert_eq!(b.parent.as_ref().unwrap().kind, "DaemonSet");
        assert!(plan.manifests.is_none());
    }

    #[test]
    fn bad_asset_dirs_name_the_file() {
        let t = tempfile::tempdir().unwrap();
        let err = read(t.path(), None).unwrap_err().to_string();
        assert!(err.contains("auth/kubeconfig"), "{err}");
        write(t.path(), "auth/kubeconfig", "kc");
        let err = read(t.path(), None).unwrap_err().to_string();
        assert!(err.contains("bootstrap-manifests"), "{err}");
        write(
            t.path(),
            "bootstrap-manifests/bootstrap-x.yaml",
            "{ not yaml",
        );
        let err = read(t.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("bootstrap-x.yaml") && err.contains("not a Pod"),
            "{err}"
        );
    }

    #[test]
    fn bootkube_asset_dirs_name_the_parent_by_pod_name() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "auth/kubeconfig", "kc");
        let pod = POD.replace(
            "  annotations:\n    kubeboot.io/parent: DaemonSet/kube-system/kube-apiserver\n",
            "",
        );
        write(
            t.path(),
            "bootstrap-manifests/bootstrap-kube-apiserver.yaml",
            &pod,
        );
        let plan = read(t.path(), None).unwrap();
        assert_eq!(plan.bootstrap[0].component(), "kube-apiserver");
    }
}
