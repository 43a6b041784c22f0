//! What `start` will do, read from the asset dir and checked before anything on the node
//! is touched: a missing kubeconfig, a bootstrap manifest that is not a Pod, or a
//! `manifests/` file that is not YAML stops `start` with nothing installed.

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::manifests::{self, Phases};
use crate::render::{ANNOTATION_PARENT, LABEL_BOOTSTRAP_OF};

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

/// Everything `start` needs from an asset dir.
#[derive(Debug)]
pub struct Plan {
    pub asset_dir: PathBuf,
    pub kubeconfig_path: PathBuf,
    pub kubeconfig: Vec<u8>,
    pub tls_dir: PathBuf,
    pub bootstrap: Vec<BootstrapPod>,
    /// `None` when there is no `manifests/` (a recovered cluster: the objects are
    /// still in etcd).
    pub manifests: Option<Phases>,
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

/// Reads and checks `asset_dir`. `kubeconfig` overrides `auth/kubeconfig`.
pub fn read(asset_dir: &Path, kubeconfig: Option<&Path>) -> Result<Plan, PlanError> {
    if !asset_dir.is_dir() {
        return Err(file_err(asset_dir, "asset dir does not exist"));
    }
    let kubeconfig_path =
        kubeconfig.map_or_else(|| asset_dir.join("auth/kubeconfig"), Path::to_path_buf);
    let kubeconfig = fs::read(&kubeconfig_path).map_err(|e| file_err(&kubeconfig_path, e))?;
    let bootstrap = read_bootstrap(&asset_dir.join("bootstrap-manifests"))?;
    let manifests_dir = asset_dir.join("manifests");
    let manifests = if manifests_dir.is_dir() {
        Some(manifests::phases(manifests::load_dir(&manifests_dir)?))
    } else {
        None
    };
    Ok(Plan {
        asset_dir: asset_dir.to_path_buf(),
        kubeconfig_path,
        kubeconfig,
        tls_dir: asset_dir.join("tls"),
        bootstrap,
        manifests,
    })
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
