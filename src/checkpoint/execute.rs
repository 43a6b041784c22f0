//! Applies one step's actions to the disk. Each action is idempotent and complete or
//! absent: files are replaced with temp + fsync + rename (`fsutil::write_atomic`),
//! volume dirs with a symlink swap (`payload`).
//!
//! A save reads everything first (Secrets, ConfigMaps, tokens), then writes the volume
//! dirs, then the manifest: a save that fails to read leaves the previous checkpoint
//! whole, and a manifest on disk always finds its data (bootkube wrote the manifest
//! first). Volume dirs the manifest no longer names are pruned after it is written.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use super::files::{DIR_MODE, Layout, MANIFEST_MODE};
use super::materialize::{Fetcher, ownership};
use super::payload::{self, File, Ownership};
use super::sanitize::{self, Materialize};
use super::state::PodKey;
use crate::fsutil::{self, FsError};

/// What executes actions: the layout, and whether files may be chowned.
pub struct Executor {
    pub layout: Layout,
    pub as_root: bool,
    pub fetcher: Fetcher,
}

fn remove_file(path: &Path) -> Result<bool, FsError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            fsutil::fsync_dir(fsutil::parent_of(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::io("remove", path)(e)),
    }
}

fn remove_dir(path: &Path) -> Result<(), FsError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("remove", path)(e)),
    }
}

impl Executor {
    fn local(&self, host: &str) -> Result<std::path::PathBuf, String> {
        self.layout.local(host).ok_or_else(|| {
            format!(
                "{host} is not under the checkpoint dir {}",
                self.layout.host_checkpoint_dir
            )
        })
    }

    /// Writes `key`'s data and manifest; returns whether anything changed on disk. The
    /// error names what failed, never a value.
    pub async fn save(
        &mut self,
        client: &kube::Client,
        key: &PodKey,
        manifest: &k8s_openapi::api::core::v1::Pod,
        materialize: &[Materialize],
    ) -> Result<bool, String> {
        let mut volumes: Vec<(std::path::PathBuf, Vec<File>, Ownership)> = Vec::new();
        for m in materialize {
            let o = ownership(&m.owner, self.as_root)
                .map_err(|e| format!("volume {:?}: {e}", m.volume))?;
            let files = self
                .fetcher
                .files(client, m, m.owner.gid.is_some())
                .await
                .map_err(|e| format!("volume {:?}: {e}", m.volume))?;
            payload::check(&files).map_err(|e| format!("volume {:?}: {e}", m.volume))?;
            volumes.push((self.local(&m.host_dir)?, files, o));
        }
        let mut bytes = serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        let mut changed = false;
        for (dir, files, o) in &volumes {
            self.private_dirs(fsutil::parent_of(dir))?;
            changed |= payload::write(dir, files, o).map_err(|e| e.to_string())?;
        }
        let saved = self.layout.saved(key);
        if std::fs::read(&saved).ok().as_deref() != Some(bytes.as_slice()) {
            changed = true;
            self.private_dirs(&self.layout.saved_dir())?;
            fsutil::write_atomic(&saved, &bytes, MANIFEST_MODE).map_err(|e| e.to_string())?;
        }
        let keep: BTreeSet<&Path> = volumes.iter().map(|(d, _, _)| d.as_path()).collect();
        Ok(self.prune_volumes(key, &keep)? || changed)
    }

    /// Makes `dir` (under the checkpoint dir) and the dirs above it up to the checkpoint
    /// dir root's private 0700 dirs, by a descriptor walk that refuses a link or another
    /// user's dir on the way ([`fsutil::walk::private_tree`]): the path-based writes
    /// below them then cannot be redirected.
    fn private_dirs(&self, dir: &Path) -> Result<(), String> {
        let root = &self.layout.checkpoint_dir;
        let rel = dir
            .strip_prefix(root)
            .map_err(|_| format!("{} is not under {}", dir.display(), root.display()))?;
        fsutil::walk::private_tree(root, rel, DIR_MODE).map_err(|e| e.to_string())
    }

    /// Removes volume dirs of `key` that the saved manifest no longer names; returns
    /// whether there were any.
    fn prune_volumes(&self, key: &PodKey, keep: &BTreeSet<&Path>) -> Result<bool, String> {
        let mut pruned = false;
        for host in sanitize::data_dirs(&self.layout.host_checkpoint_dir, key) {
            let dir = self.local(&host)?;
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if !keep.contains(path.as_path()) {
                    remove_dir(&path).map_err(|e| e.to_string())?;
                    pruned = true;
                }
            }
        }
        Ok(pruned)
    }

    /// Copies the saved manifest into the static pod dir, if it differs.
    pub fn activate(&self, key: &PodKey) -> Result<(), String> {
        let saved = self.layout.saved(key);
        let bytes = std::fs::read(&saved)
            .map_err(|e| format!("read saved checkpoint {}: {e}", saved.display()))?;
        let active = self.layout.active(key);
        if std::fs::read(&active).ok().as_deref() == Some(bytes.as_slice()) {
            return Ok(());
        }
        fsutil::create_dir_all_with_mode(&self.layout.active_dir, 0o755)
            .map_err(|e| e.to_string())?;
        fsutil::write_atomic(&active, &bytes, MANIFEST_MODE).map_err(|e| e.to_string())
    }

    /// Removes the copy in the static pod dir.
    pub fn deactivate(&self, key: &PodKey) -> Result<(), String> {
        remove_file(&self.layout.active(key))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Removes the data dirs, the saved manifest, then the active copy (state.rs's
    /// order: for the self checkpoint the last step stops this process).
    pub fn remove(&self, key: &PodKey) -> Result<(), String> {
        for host in sanitize::data_dirs(&self.layout.host_checkpoint_dir, key) {
            let dir = self.local(&host)?;
            remove_dir(&dir).map_err(|e| e.to_string())?;
            // The namespace dir, once empty; a non-empty one stays.
            let _ = std::fs::remove_dir(fsutil::parent_of(&dir));
        }
        remove_file(&self.layout.saved(key)).map_err(|e| e.to_string())?;
        remove_file(&self.layout.active(key)).map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::files::file_name;

    fn executor(root: &Path) -> Executor {
        Executor {
            layout: Layout {
                active_dir: root.join("manifests"),
                checkpoint_dir: root.join("checkpoints"),
                host_checkpoint_dir: "/etc/kubernetes/checkpoints".into(),
            },
            as_root: false,
            fetcher: Fetcher::default(),
        }
    }

    #[test]
    fn activate_copies_deactivate_and_remove_delete_only_their_files() {
        let t = tempfile::tempdir().unwrap();
        let x = executor(t.path());
        let key = PodKey::new("ns", "p");
        assert!(x.activate(&key).is_err(), "nothing saved");
        let l = &x.layout;
        std::fs::create_dir_all(l.saved_dir()).unwrap();
        std::fs::write(l.saved(&key), "{}").unwrap();
        x.activate(&key).unwrap();
        assert_eq!(std::fs::read(l.active(&key)).unwrap(), b"{}");
        let meta = std::fs::metadata(l.active(&key)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        x.activate(&key).unwrap();
        x.deactivate(&key).unwrap();
        x.deactivate(&key).unwrap();
        assert!(!l.active(&key).exists());

        let data = l.checkpoint_dir.join("secrets/ns/p/vol");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("k"), "v").unwrap();
        let other = l.checkpoint_dir.join("secrets/ns/q/vol");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(l.active_dir.join("kube-apiserver.yaml"), "x").unwrap();
        std::fs::write(l.active_dir.join(".hidden"), "x").unwrap();
        x.activate(&key).unwrap();
        x.remove(&key).unwrap();
        x.remove(&key).unwrap();
        assert!(!l.checkpoint_dir.join("secrets/ns/p").exists());
        assert!(other.exists());
        assert!(!l.saved(&key).exists());
        assert!(!l.active(&key).exists());
        let left: Vec<String> = std::fs::read_dir(&l.active_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!left.contains(&file_name(&key)));
    }
}
