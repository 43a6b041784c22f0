//! The PKI half of a backup: host files a restore needs besides the snapshot. The
//! cluster's own CA and service-account keys are Secrets, inside the snapshot; what
//! is not are etcd's client certificates (bootkube #612: a backup restore that could
//! not talk to etcd) and the EncryptionConfiguration without which encrypted Secrets
//! cannot be read. Each file goes to `pki/<its absolute host path>`, so the backup
//! says where to put it back.
//!
//! Directories are copied recursively, following symlinks, and skipping the
//! kubelet's `..data`-style entries (a mounted Secret holds each file twice).

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::catalog::{FileRecord, PKI_DIR, hash_file};
use crate::fsutil;

/// A PKI path the operator named that cannot be copied: a configuration error.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct PkiError {
    pub path: String,
    pub reason: String,
}

impl PkiError {
    fn new(path: &Path, reason: impl ToString) -> Self {
        PkiError {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Copies every file under `sources` into `<backup>/pki/` (0600 files, 0700 dirs) and
/// returns their records, sorted by path. A source named twice is copied once.
pub fn copy_into(backup: &Path, sources: &[PathBuf]) -> Result<Vec<FileRecord>, PkiError> {
    let mut files = Vec::new();
    for source in sources {
        if !source.is_absolute() || source.components().any(|c| c == Component::ParentDir) {
            return Err(PkiError::new(
                source,
                "must be an absolute path without '..'",
            ));
        }
        collect(source, &mut files)?;
    }
    files.sort();
    files.dedup();
    let mut records = Vec::with_capacity(files.len());
    for file in files {
        records.push(copy_one(backup, &file)?);
    }
    Ok(records)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), PkiError> {
    let meta = fs::metadata(path).map_err(|e| PkiError::new(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(PkiError::new(path, "not a regular file or directory"));
    }
    let entries = fs::read_dir(path).map_err(|e| PkiError::new(path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PkiError::new(path, e))?;
        if entry.file_name().to_string_lossy().starts_with("..") {
            continue;
        }
        collect(&entry.path(), out)?;
    }
    Ok(())
}

fn copy_one(backup: &Path, file: &Path) -> Result<FileRecord, PkiError> {
    // Sources are absolute without `..` (copy_into checks), so dropping the root
    // leaves the host path nested under pki/.
    let relative: PathBuf = file
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let inside = Path::new(PKI_DIR).join(&relative);
    let target = backup.join(&inside);
    let bytes = fs::read(file).map_err(|e| PkiError::new(file, e))?;
    let write = |path: &Path| -> Result<(), fsutil::FsError> {
        fsutil::create_dir_all_with_mode(fsutil::parent_of(path), 0o700)?;
        fsutil::write_atomic(path, &bytes, 0o600)
    };
    write(&target).map_err(|e| PkiError::new(&target, e))?;
    let (size, sha256) = hash_file(&target).map_err(|e| PkiError::new(&target, e))?;
    Ok(FileRecord {
        path: inside.display().to_string(),
        source: Some(file.display().to_string()),
        size,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn copies_files_and_dirs_under_their_host_path() {
        let host = tempfile::tempdir().unwrap();
        let backup = tempfile::tempdir().unwrap();
        let etcd = host.path().join("etcd");
        fs::create_dir_all(etcd.join("..2026_11_26")).unwrap();
        fs::write(etcd.join("..2026_11_26/ca.crt"), b"hidden twin").unwrap();
        fs::write(etcd.join("ca.crt"), b"CA").unwrap();
        fs::write(etcd.join("client.key"), b"KEY").unwrap();
        let enc = host.path().join("encryption.yaml");
        fs::write(&enc, b"kind: EncryptionConfiguration").unwrap();

        let records = copy_into(backup.path(), &[etcd.clone(), enc.clone(), enc.clone()]).unwrap();
        let paths: Vec<&str> = records.iter().map(|r| r.path.as_str()).collect();
        let rel = |p: &Path| format!("pki{}", p.display());
        assert_eq!(
            paths,
            [
                rel(&enc),
                rel(&etcd.join("ca.crt")),
                rel(&etcd.join("client.key")),
            ]
        );
        let key = backup.path().join(&records[2].path);
        assert_eq!(fs::read(&key).unwrap(), b"KEY");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(key.parent().unwrap()), 0o700);
        assert_eq!(records[2].size, 3);
        assert_eq!(
            records[2].source.as_deref(),
            Some(etcd.join("client.key").to_str().unwrap())
        );
    }

    #[test]
    fn missing_or_relative_paths_are_named() {
        let backup = tempfile::tempdir().unwrap();
        let err = copy_into(backup.path(), &[PathBuf::from("/nonexistent/ca.crt")]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/ca.crt: "),
            "{err}"
        );
        let err = copy_into(backup.path(), &[PathBuf::from("ca.crt")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ca.crt: must be an absolute path without '..'"
        );
        let err = copy_into(backup.path(), &[PathBuf::from("/etc/../ca.crt")]).unwrap_err();
        assert!(
            err.to_string().starts_with("/etc/../ca.crt: must be"),
            "{err}"
        );
    }
}
