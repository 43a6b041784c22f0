//! File-system primitives for docs/design.md §5: nothing half-written (temp file, fsync,
//! rename, fsync the dir), nothing destroyed (move aside with a timestamp instead of
//! deleting), and one recovery at a time (an exclusive lock file).
//!
//! Every error names the path it is about, so the command layer can print it as is.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An I/O error with the path it happened on.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The cause is in the message and not also a `source()`, so a one-line chain
    /// does not print it twice.
    #[error("{op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("lock file {path} is held by another kubeboot process")]
    Locked { path: PathBuf },
}

impl FsError {
    pub fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError {
        let path = path.to_path_buf();
        move |error| FsError::Io { op, path, error }
    }
}

/// The parent dir of `path`, `.` for a bare file name.
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or create inside `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FsError::io("fsync dir", dir))
}

/// Creates `dir` and missing parents; the dirs it creates get `mode` (not the umask's).
pub fn create_dir_all_with_mode(dir: &Path, mode: u32) -> Result<(), FsError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_with_mode(parent, mode)?;
    }
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(FsError::io("create dir", dir)(e)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(FsError::io("chmod", dir))
}

/// Creates `path` exclusively (never over an existing file) with `bytes` and exactly
/// `mode`, fsynced. The building block of [`write_atomic`] and the asset writer.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(FsError::io("create", path))?;
    f.write_all(bytes).map_err(FsError::io("write", path))?;
    // The umask may have narrowed `mode` at open; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(FsError::io("chmod", path))?;
    f.sync_all().map_err(FsError::io("fsync", path))
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new file, never
/// a mix, and after a crash the new file is complete or absent.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_new(&tmp, bytes, mode)
        .and_then(|()| fs::rename(&tmp, path).map_err(FsError::io("rename into", path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// UTC time as `YYYYMMDDTHHMMSS.ffffffZ`: sorts by time, safe in a file name.
pub fn timestamp_suffix() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S.%6fZ")
        .to_string()
}

/// Renames `path` to `<path>.kubeboot-<timestamp>` and returns the new path. Never
/// deletes: if the name is taken (same microsecond), a counter is appended.
pub fn move_aside(path: &Path) -> Result<PathBuf, FsError> {
    move_aside_as(path, path)
}

/// Like [`move_aside`], but to `<dir>/.<name>.kubeboot-<timestamp>`: for files in dirs
/// whose readers skip dot-files only (the kubelet runs every other file in its static
/// pod dir, whatever the extension).
pub fn move_aside_hidden(path: &Path) -> Result<PathBuf, FsError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    move_aside_as(path, &parent_of(path).join(format!(".{name}")))
}

fn move_aside_as(path: &Path, base: &Path) -> Result<PathBuf, FsError> {
    let base = format!("{}.kubeboot-{}", base.display(), timestamp_suffix());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.symlink_metadata().is_ok() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    fs::rename(path, &target).map_err(FsError::io("move aside", path))?;
    fsync_dir(parent_of(path))?;
    Ok(target)
}

/// An exclusive lock, held until dropped (or the process exits).
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock at `path` without waiting; [`FsError::Locked`] if another holds
    /// it. The file is created 0600 and never removed: removing a lock file while a
    /// second process waits on it would let two processes hold "the" lock.
    pub fn try_acquire(path: &Path) -> Result<LockFile, FsError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(FsError::io("open lock file", path))?;
        let locked = file.try_lock();
        match locked {
            Ok(()) => Ok(LockFile {
                _file: file,
                path: path.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => Err(FsError::Locked {
                path: path.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(FsError::io("lock", path)(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn write_atomic_sets_mode_and_replaces() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        assert_eq!(mode(&p), 0o600);
        write_atomic(&p, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode(&p), 0o644);
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn write_atomic_failure_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("d");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("x"), b"x").unwrap();
        // Renaming a file over a non-empty dir fails.
        let err = write_atomic(&p, b"x", 0o600).unwrap_err();
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_dir_all_with_mode_ignores_umask() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        create_dir_all_with_mode(&d, 0o700).unwrap();
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&t.path().join("a")), 0o700);
        create_dir_all_with_mode(&d, 0o700).unwrap();
    }

    #[test]
    fn move_aside_keeps_contents_and_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("dir");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("f"), b"keep").unwrap();
        let moved = move_aside(&p).unwrap();
        assert!(!p.exists());
        assert_eq!(fs::read(moved.join("f")).unwrap(), b"keep");
        let name = moved.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("dir.kubeboot-") && name.ends_with('Z'),
            "{name}"
        );
        fs::create_dir(&p).unwrap();
        let again = move_aside(&p).unwrap();
        assert_ne!(again, moved);
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("kubeboot.lock");
        let held = LockFile::try_acquire(&p).unwrap();
        let err = LockFile::try_acquire(&p).unwrap_err();
        assert!(matches!(err, FsError::Locked { .. }));
        assert!(err.to_string().contains("kubeboot.lock"), "{err}");
        drop(held);
        LockFile::try_acquire(&p).unwrap();
    }
}
