//! Putting the bootstrap control plane on the node, and taking it off again.
//!
//! Both destinations are read by a running kubelet, so every change is atomic: the
//! secrets dir is built beside its target and renamed into place, and each static pod
//! file is written to a hidden temp file and renamed. A leftover that differs from what
//! we install is moved aside, never deleted (docs/design.md §5); one that is byte-identical
//! (a previous `start` killed half-way) is kept, which is what makes a second run after
//! `kill -9` converge instead of piling up copies.
//!
//! Manifests moved aside stay in the static pod dir under a hidden name: the kubelet
//! ignores dot-files, but would run any other file, whatever its extension.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, FsError};
use crate::model::{MODE_SECRET, MODE_SECRET_DIR};
use crate::render::RESTORE_HOST_SUBDIR;

/// The file name the bootstrap kubeconfig gets inside the secrets dir; the rendered
/// bootstrap pods mount the dir and read `<mount>/kubeconfig`.
pub const KUBECONFIG_FILE: &str = "kubeconfig";

/// What happened to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// Already there with the same bytes.
    Kept,
    /// A different file or dir was there; it now lives at this path.
    Replaced(PathBuf),
}

/// Every file under `dir`, by path relative to it.
fn read_tree(dir: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>, FsError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(FsError::io("read dir", &d))? {
            let path = entry.map_err(FsError::io("read dir", &d))?.path();
            let meta = fs::symlink_metadata(&path).map_err(FsError::io("stat", &path))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let bytes = fs::read(&path).map_err(FsError::io("read", &path))?;
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                out.insert(rel, bytes);
            }
        }
    }
    Ok(out)
}

fn write_tree(dir: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<(), FsError> {
    fsutil::create_dir_all_with_mode(dir, MODE_SECRET_DIR)?;
    for (rel, bytes) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fsutil::create_dir_all_with_mode(parent, MODE_SECRET_DIR)?;
        }
        fsutil::write_new(&path, bytes, MODE_SECRET)?;
    }
    let mut dirs: Vec<PathBuf> = files
        .keys()
        .filter_map(|rel| dir.join(rel).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        fsutil::fsync_dir(&d)?;
    }
    Ok(())
}

/// Installs `tls/`, the bootstrap kubeconfig and, for an etcd restore, `etcd/` (under
/// [`RESTORE_HOST_SUBDIR`], which the bootstrap-etcd pod mounts) as `dest`, all 0600 in 0700 dirs.
pub fn install_secrets(
    tls: &Path,
    kubeconfig: &[u8],
    etcd: Option<&Path>,
    dest: &Path,
) -> Result<Outcome, FsError> {
    let mut files = if tls.is_dir() {
        read_tree(tls)?
    } else {
        BTreeMap::new()
    };
    files.insert(PathBuf::from(KUBECONFIG_FILE), kubeconfig.to_vec());
    if let Some(etcd) = etcd {
        for (rel, bytes) in read_tree(etcd)? {
            files.insert(Path::new(RESTORE_HOST_SUBDIR).join(rel), bytes);
        }
    }
    if dest.is_dir() && read_tree(dest)? == files {
        return Ok(Outcome::Kept);
    }
    let parent = fsutil::parent_of(dest);
    fsutil::create_dir_all_with_mode(parent, MODE_SECRET_DIR)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.kubeboot-tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(FsError::io("remove stale temp dir", &tmp))?;
    }
    if let Err(e) = write_tree(&tmp, &files) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let outcome = if dest.symlink_metadata().is_ok() {
        Outcome::Replaced(fsutil::move_aside(dest)?)
    } else {
        Outcome::Written
    };
    fs::rename(&tmp, dest).map_err(FsError::io("rename into", dest))?;
    fsutil::fsync_dir(parent)?;
    Ok(outcome)
}

/// Removes the secrets dir `start` installed (it holds copies of keys; the originals
/// stay in the asset dir).
pub fn remove_secrets(dest: &Path) -> Result<(), FsError> {
    match fs::remove_dir_all(dest) {
        Ok(()) => fsutil::fsync_dir(fsutil::parent_of(dest)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FsError::io("remove", dest)(e)),
    }
}

/// Writes one static pod manifest into the kubelet's dir.
pub fn install_manifest(dir: &Path, file: &str, bytes: &[u8]) -> Result<Outcome, FsError> {
    fsutil::create_dir_all_with_mode(dir, MODE_SECRET_DIR)?;
    let path = dir.join(file);
    let outcome = match fs::read(&path) {
        Ok(existing) if existing == bytes => return Ok(Outcome::Kept),
        // A copy is kept aside and the manifest replaced by one rename, so the kubelet finds
        // a manifest at every instant, even if start is killed in between.
        Ok(_) => Outcome::Replaced(fsutil::link_aside_hidden(&path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::Written,
        Err(e) => return Err(FsError::io("read", &path)(e)),
    };
    fsutil::write_atomic(&path, bytes, MODE_SECRET)?;
    Ok(outcome)
}

/// Removes a static pod manifest if it is still the one we installed; returns whether
/// it was there. A file someone changed since is left alone.
pub fn remove_manifest(dir: &Path, file: &str, bytes: &[u8]) -> Result<bool, FsError> {
    let path = dir.join(file);
    match fs::read(&path) {
        Ok(existing) if existing == bytes => {
            fs::remove_file(&path).map_err(FsError::io("remove", &path))?;
            fsutil::fsync_dir(dir)?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::io("read", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn secrets_are_installed_private_and_kept_when_identical() {
        let t = tempfile::tempdir().unwrap();
        let tls = t.path().join("tls");
        fs::create_dir_all(tls.join("secrets/kube-apiserver")).unwrap();
        fs::write(tls.join("secrets/kube-apiserver/ca.crt"), "CA").unwrap();
        let dest = t.path().join("etc/kubernetes/bootstrap-secrets");
        assert_eq!(
            install_secrets(&tls, b"KC", None, &dest).unwrap(),
            Outcome::Written
        );
        assert_eq!(
            fs::read(dest.join("secrets/kube-apiserver/ca.crt")).unwrap(),
            b"CA"
        );
        assert_eq!(fs::read(dest.join("kubeconfig")).unwrap(), b"KC");
        assert_eq!(mode(&dest.join("kubeconfig")), 0o600);
        assert_eq!(mode(&dest), 0o700);
        assert_eq!(mode(&dest.join("secrets")), 0o700);
        assert_eq!(
            install_secrets(&tls, b"KC", None, &dest).unwrap(),
            Outcome::Kept
        );
        // A different leftover is moved aside, not deleted.
        let Outcome::Replaced(aside) = install_secrets(&tls, b"KC2", None, &dest).unwrap() else {
            panic!("expected the old dir to be moved aside");
        };
        assert_eq!(fs::read(aside.join("kubeconfig")).unwrap(), b"KC");
        assert_eq!(fs::read(dest.join("kubeconfig")).unwrap(), b"KC2");
        remove_secrets(&dest).unwrap();
        assert!(!dest.exists());
        assert!(aside.exists());
    }

    #[test]
    fn a_leftover_manifest_is_moved_aside_under_a_hidden_name() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("manifests");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("bootstrap-x.yaml"), "old").unwrap();
        let Outcome::Replaced(aside) = install_manifest(&dir, "bootstrap-x.yaml", b"new").unwrap()
        else {
            panic!("expected a move aside");
        };
        let aside_name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            aside_name.starts_with(".bootstrap-x.yaml.kubeboot-"),
            "{aside_name}"
        );
        assert_eq!(fs::read(&aside).unwrap(), b"old");
        assert_eq!(mode(&dir.join("bootstrap-x.yaml")), 0o600);
        // The swap never leaves the dir without a manifest: the copy aside is a second name
        // made before the new file is renamed over the old one (issue 12, finding 6).
        fs::write(dir.join("bootstrap-y.yaml"), "y-old").unwrap();
        let kept = fsutil::link_aside_hidden(&dir.join("bootstrap-y.yaml")).unwrap();
        assert_eq!(fs::read(dir.join("bootstrap-y.yaml")).unwrap(), b"y-old");
        assert_eq!(fs::read(&kept).unwrap(), b"y-old");
        fs::remove_file(dir.join("bootstrap-y.yaml")).unwrap();
        fs::remove_file(kept).unwrap();
        assert_eq!(
            install_manifest(&dir, "bootstrap-x.yaml", b"new").unwrap(),
            Outcome::Kept
        );
        // A second leftover does not overwrite the first hidden copy.
        fs::write(dir.join("bootstrap-x.yaml"), "other").unwrap();
        let Outcome::Replaced(second) = install_manifest(&dir, "bootstrap-x.yaml", b"new").unwrap()
        else {
            panic!("expected a move aside");
        };
        assert_ne!(second, aside);
        assert_eq!(fs::read(&second).unwrap(), b"other");
        assert_eq!(fs::read(&aside).unwrap(), b"old");
        let visible: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(visible, ["bootstrap-x.yaml"]);
    }

    #[test]
    fn only_our_own_manifest_is_removed() {
        let t = tempfile::tempdir().unwrap();
        install_manifest(t.path(), "a.yaml", b"ours").unwrap();
        assert!(remove_manifest(t.path(), "a.yaml", b"ours").unwrap());
        assert!(!remove_manifest(t.path(), "a.yaml", b"ours").unwrap());
        fs::write(t.path().join("a.yaml"), "theirs").unwrap();
        assert!(!remove_manifest(t.path(), "a.yaml", b"ours").unwrap());
        assert_eq!(fs::read(t.path().join("a.yaml")).unwrap(), b"theirs");
    }
}
