//! A pod's volumes on this node, and each container's mount table. hostPath volumes
//! resolve under `--root-fs` (the node's filesystem); emptyDir, secret, configMap,
//! downwardAPI and projected volumes live in `<root-dir>/pods/<uid>/volumes/<name>/`,
//! written by the atomic writer and refreshed by [`PodVolumes::sync`] every few seconds.
//! The service-account token volume is an ordinary projected volume the api-server's
//! ServiceAccount admission put into the pod: the kubelet never reads a ServiceAccount
//! (its Node authorizer identity may not).
//!
//! *Expected flow:* [`setup`] is retried by the pod's supervisor until it succeeds (the
//! containers wait with `CreateContainerConfigError` meanwhile), then `sync` runs on a
//! timer while the pod runs, and [`PodVolumes::cleanup`] removes the pod's volume dirs
//! once its processes are gone. *Guarantees:* every step is idempotent; a failed refresh
//! keeps the last good payload. *Caveats:* hostPath volumes are never removed; a real
//! kubelet reports a failed mount as `ContainerCreating` plus a `FailedMount` event.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume};

use super::Shared;
use super::apiobjects::{self, TokenCache};
use super::atomic;
use super::mounts::MountTable;
use super::process::{StartError, expand};
use super::projection::{self, Ref};

fn config_error(message: String) -> StartError {
    StartError {
        reason: "CreateContainerConfigError",
        message,
    }
}

/// `<root-dir>/pods/<uid>` (or `<ns>_<name>` for a pod without a UID).
pub fn pod_dir(root_dir: &Path, pod: &Pod) -> PathBuf {
    let m = &pod.metadata;
    let id = m.uid.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        let ns = m.namespace.as_deref().unwrap_or("default");
        format!("{ns}_{}", m.name.as_deref().unwrap_or(""))
    });
    root_dir.join("pods").join(id)
}

/// A hostPath `path` on this node: `root_fs/path`. `..` elements are refused, like the
/// API's validation does.
pub fn host_path(root_fs: &Path, path: &str) -> Result<PathBuf, String> {
    let rel = path.trim_start_matches('/');
    if !path.starts_with('/') || rel.split('/').any(|s| s == "..") {
        return Err(format!("hostPath {path:?} must be absolute without '..'"));
    }
    Ok(root_fs.join(rel))
}

/// The hostPath `type` check (and creation for the `*OrCreate` types).
pub fn check_host_path(p: &Path, ty: &str) -> Result<(), String> {
    let meta = std::fs::metadata(p);
    let is = |f: fn(&std::fs::FileType) -> bool| meta.as_ref().is_ok_and(|m| f(&m.file_type()));
    let ok = match ty {
        "" => true,
        "DirectoryOrCreate" => std::fs::create_dir_all(p).is_ok(),
        "Directory" => is(|t| t.is_dir()),
        "FileOrCreate" => {
            is(|t| t.is_file())
                || std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(p)
                    .is_ok()
        }
        "File" => is(|t| t.is_file()),
        "Socket" => is(|t| t.is_socket()),
        "CharDevice" => is(|t| t.is_char_device()),
        "BlockDevice" => is(|t| t.is_block_device()),
        other => return Err(format!("unknown hostPath type {other:?}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "hostPath type check failed: {} is not a {ty}",
            p.display()
        ))
    }
}

/// A pod's volumes as set up on this node.
pub struct PodVolumes {
    pub dir: PathBuf,
    /// Container name → mountPath → host path.
    pub tables: BTreeMap<String, MountTable>,
    api: Vec<(Volume, PathBuf)>,
    refs: BTreeSet<Ref>,
    tokens: TokenCache,
}

/// Prepares every volume and mount table, and writes the API-backed volumes once.
pub async fn setup(shared: &Shared, pod: &Pod) -> Result<PodVolumes, StartError> {
    let cfg = &shared.cfg;
    let spec = pod.spec.clone().unwrap_or_default();
    let dir = pod_dir(&cfg.root_dir, pod);
    let mut paths: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut v = PodVolumes {
        dir: dir.clone(),
        tables: BTreeMap::new(),
        api: Vec::new(),
        refs: BTreeSet::new(),
        tokens: TokenCache::default(),
    };
    for vol in spec.volumes.iter().flatten() {
        let own = dir.join("volumes").join(&vol.name);
        let err = |e: String| config_error(format!("volume {:?}: {e}", vol.name));
        let path = if let Some(h) = &vol.host_path {
            let p = host_path(&cfg.root_fs, &h.path).map_err(err)?;
            check_host_path(&p, h.type_.as_deref().unwrap_or("")).map_err(err)?;
            p
        } else if vol.empty_dir.is_some() {
            std::fs::create_dir_all(&own).map_err(|e| err(e.to_string()))?;
            own
        } else if vol.secret.is_some()
            || vol.config_map.is_some()
            || vol.downward_api.is_some()
            || vol.projected.is_some()
        {
            v.refs.extend(projection::refs(vol));
            v.api.push((vol.clone(), own.clone()));
            own
        } else {
            let msg = "fake-kubelet supports hostPath, emptyDir, secret, configMap, downwardAPI and projected volumes only";
            return Err(err(msg.into()));
        };
        paths.insert(vol.name.clone(), path);
    }
    let env = |c: &k8s_openapi::api::core::v1::Container| {
        super::process::env(c, pod, &cfg.node_ip.to_string())
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let mut t = MountTable::default();
        for m in c.volume_mounts.iter().flatten() {
            let base = paths.get(&m.name).ok_or_else(|| {
                config_error(format!(
                    "container {}: volume {:?} not found",
                    c.name, m.name
                ))
            })?;
            let sub = match (&m.sub_path, &m.sub_path_expr) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(e)) if !e.is_empty() => expand(e, &env(c)),
                _ => String::new(),
            };
            if !sub.is_empty() && !atomic::valid_path(&sub) {
                return Err(config_error(format!(
                    "subPath {sub:?} is not a relative path"
                )));
            }
            t.insert(
                &m.mount_path,
                &if sub.is_empty() {
                    base.clone()
                } else {
                    base.join(sub)
                },
            );
        }
        v.tables.insert(c.name.clone(), t);
    }
    v.sync(shared, pod).await.map_err(config_error)?;
    Ok(v)
}

impl PodVolumes {
    /// Fetches the API objects again and rewrites every API-backed volume that changed.
    pub async fn sync(&self, shared: &Shared, pod: &Pod) -> Result<(), String> {
        if self.api.is_empty() {
            return Ok(());
        }
        let api = shared.api.get();
        let objs = apiobjects::fetch(api, pod, &self.refs, &self.tokens).await;
        for (vol, dir) in &self.api {
            let err = |e: String| format!("volume {:?}: {e}", vol.name);
            let files = projection::render(vol, &objs, pod)
                .map_err(err)?
                .unwrap_or_default();
            atomic::write(dir, &files).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }

    /// Removes the pod's own volume dirs (emptyDir data included), not hostPaths.
    pub fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(self.dir.join("volumes"));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_resolve_under_root_fs() {
        let root = Path::new("/t/nodes/m1");
        assert_eq!(
            host_path(root, "/etc/kubernetes").unwrap(),
            root.join("etc/kubernetes")
        );
        assert_eq!(
            host_path(Path::new("/"), "/etc/x").unwrap(),
            PathBuf::from("/etc/x")
        );
        assert!(host_path(root, "/etc/../../x").is_err());
        assert!(host_path(root, "etc").is_err());
    }

    #[test]
    fn host_path_types() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path();
        assert!(check_host_path(&d.join("nope"), "Directory").is_err());
        assert!(check_host_path(&d.join("nope"), "").is_ok());
        check_host_path(&d.join("a/b"), "DirectoryOrCreate").map_err(std::io::Error::other)?;
        assert!(check_host_path(&d.join("a/b"), "Directory").is_ok());
        assert!(check_host_path(&d.join("a/b"), "File").is_err());
        assert!(check_host_path(&d.join("a/f"), "FileOrCreate").is_ok());
        assert!(check_host_path(&d.join("a/f"), "File").is_ok());
        assert!(
            check_host_path(&d.join("x/f"), "FileOrCreate").is_err(),
            "parent is not created"
        );
        assert!(check_host_path(d, "Weird").is_err());
        Ok(())
    }

    #[test]
    fn pod_dirs() {
        let p: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a", "namespace": "n"}}),
        )
        .unwrap();
        assert_eq!(pod_dir(Path::new("/r"), &p), PathBuf::from("/r/pods/n_a"));
    }
}
