//! Where a checkpoint lives on disk, how its file name marks it as this daemon's, and
//! reading the checkpoints back into [`OnDisk`] every cycle.
//!
//! Why a name prefix: the kubelet's static pod dir is shared with the bootstrap pods,
//! kubeadm's pods and whatever else the operator put there. bootkube named its files
//! `<ns>-<name>.json` (ambiguous: both parts may hold `-`) and deleted every dotfile it
//! found there. Here only files named `kubeboot-checkpoint_<ns>_<name>.json` (`_` is in
//! neither a namespace nor a pod name, so the key parses back) and this daemon's own
//! leftover temp files (`.kubeboot-checkpoint_…tmp-…`, from `fsutil::write_atomic`) are
//! ever touched.
//!
//! Layout under `--checkpoint-dir` (0700: it holds Secrets):
//! `saved/<file>` is the saved (inactive) manifest, `secrets|configmaps|projected/<ns>/
//! <pod>/<volume>/` the data its hostPath volumes name (`sanitize::data_dirs`). The
//! active copy is `<pod-manifest-path>/<file>`, a byte-for-byte copy of the saved one.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::sanitize;
use super::state::{Active, OnDisk, PodKey};
use super::volumes::check_name;
use crate::fsutil::FsError;

/// Every file this daemon writes into a manifest dir starts with this.
pub const FILE_PREFIX: &str = "kubeboot-checkpoint_";
const FILE_SUFFIX: &str = ".json";
/// The saved manifests, under the checkpoint dir.
pub const SAVED_DIR: &str = "saved";
/// Manifests (saved and active): root-only, like kubeadm's static pods (CIS Kubernetes
/// Benchmark 1.1.x asks 0600 for control-plane pod specs). The kubelet runs as root.
pub const MANIFEST_MODE: u32 = 0o600;
/// The checkpoint dir and the dirs above each volume dir.
pub const DIR_MODE: u32 = 0o700;

/// The file name of `key`'s checkpoint, saved and active.
#[must_use]
pub fn file_name(key: &PodKey) -> String {
    format!("{FILE_PREFIX}{}_{}{FILE_SUFFIX}", key.namespace, key.name)
}

/// The parent of a checkpoint file, or `None` for a file this daemon did not name.
#[must_use]
pub fn parse_file_name(name: &str) -> Option<PodKey> {
    let rest = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    let (ns, pod) = rest.split_once('_')?;
    let ok = |s: &str| check_name(s).is_ok() && !s.contains('_') && !s.starts_with('.');
    (ok(ns) && ok(pod)).then(|| PodKey::new(ns, pod))
}

/// A temp file `fsutil::write_atomic` left behind when this daemon died mid-write.
#[must_use]
pub fn is_own_temp(name: &str) -> bool {
    name.strip_prefix('.').is_some_and(|n| {
        n.starts_with(FILE_PREFIX) && n.contains(FILE_SUFFIX) && n.contains(".tmp-")
    })
}

/// The paths of one daemon, in its own mount namespace, plus the data root as the
/// kubelet sees it (what the manifests name).
#[derive(Debug, Clone)]
pub struct Layout {
    /// The kubelet's static pod dir (`--pod-manifest-path`).
    pub active_dir: PathBuf,
    /// `--checkpoint-dir`.
    pub checkpoint_dir: PathBuf,
    /// `--host-checkpoint-dir`: the same dir as the kubelet sees it; absolute, no
    /// trailing `/`. Passed to `sanitize` as the data root.
    pub host_checkpoint_dir: String,
}

impl Layout {
    pub fn saved_dir(&self) -> PathBuf {
        self.checkpoint_dir.join(SAVED_DIR)
    }

    pub fn saved(&self, key: &PodKey) -> PathBuf {
        self.saved_dir().join(file_name(key))
    }

    pub fn active(&self, key: &PodKey) -> PathBuf {
        self.active_dir.join(file_name(key))
    }

    /// A host path under the host checkpoint dir (a volume's `host_dir`, a data dir) as
    /// this process opens it; `None` if it is not under it.
    #[must_use]
    pub fn local(&self, host_path: &str) -> Option<PathBuf> {
        let rest = host_path.strip_prefix(&self.host_checkpoint_dir)?;
        if rest.is_empty() {
            return Some(self.checkpoint_dir.clone());
        }
        let rest = rest.strip_prefix('/')?;
        let safe = rest
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
        safe.then(|| self.checkpoint_dir.join(rest))
    }
}

/// The checkpoints on disk, and what could not be read (one line each).
#[derive(Debug, Default)]
pub struct DiskView {
    pub disk: BTreeMap<PodKey, OnDisk>,
    pub problems: Vec<String>,
}

/// This daemon's files in `dir`: key → path. A missing dir is empty; an unreadable one
/// is an error (the cycle then decides nothing rather than act on half a picture).
fn own_files(dir: &Path) -> Result<Vec<(PodKey, PathBuf)>, FsError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::io("read dir", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FsError::io("read dir", dir))?;
        let name = entry.file_name();
        if let Some(key) = name.to_str().and_then(parse_file_name) {
            out.push((key, entry.path()));
        }
    }
    Ok(out)
}

/// Parses a saved manifest; it must be the checkpoint of `key`.
pub fn parse_saved(key: &PodKey, bytes: &[u8]) -> Result<Pod, String> {
    let pod: Pod = serde_json::from_slice(bytes).map_err(|e| format!("not a pod: {e}"))?;
    if PodKey::of(&pod).as_ref() != Some(key) {
        return Err(format!("it is not the checkpoint of {key}"));
    }
    if !sanitize::is_checkpoint(&pod) {
        return Err(format!(
            "it lacks the {} annotation",
            sanitize::ANNOTATION_CHECKPOINT_OF
        ));
    }
    Ok(pod)
}

/// Reads the saved and active checkpoints. A file that cannot be read or parsed is a
/// checkpoint with no saved manifest (its next save replaces it), and a problem.
pub fn read_disk(layout: &Layout) -> Result<DiskView, FsError> {
    let mut view = DiskView::default();
    let mut saved_bytes: BTreeMap<PodKey, Vec<u8>> = BTreeMap::new();
    for (key, path) in own_files(&layout.saved_dir())? {
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match parse_saved(&key, &bytes) {
                Ok(pod) => {
                    saved_bytes.insert(key.clone(), bytes);
                    Some(pod)
                }
                Err(why) => {
                    view.problems
                        .push(format!("saved checkpoint {}: {why}", path.display()));
                    None
                }
            },
            Err(e) => {
                view.problems
                    .push(format!("saved checkpoint {}: {e}", path.display()));
                None
            }
        };
        view.disk.insert(
            key,
            OnDisk {
                saved,
                active: Active::No,
            },
        );
    }
    for (key, path) in own_files(&layout.active_dir)? {
        let active = match (std::fs::read(&path), saved_bytes.get(&key)) {
            (Ok(bytes), Some(saved)) if bytes == *saved => Active::Current,
            (Ok(_), _) => Active::Stale,
            (Err(e), _) => {
                view.problems
                    .push(format!("active checkpoint {}: {e}", path.display()));
                Active::Stale
            }
        };
        view.disk.entry(key).or_default().active = active;
    }
    Ok(view)
}

/// Removes this daemon's leftover temp files from `dir` (never anyone else's).
pub fn remove_own_temps(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(is_own_temp)
            && let Err(e) = std::fs::remove_file(entry.path())
        {
            problems.push(format!("remove {}: {e}", entry.path().display()));
        }
    }
    problems
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
