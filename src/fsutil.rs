//! File-system primitives for docs/design.md §5: nothing half-written (temp file, fsync,
//! rename, fsync the dir), nothing destroyed (move aside with a timestamp instead of
//! deleting), and one recovery at a time (an exclusive lock file).
//!
//! Every error names the path it is about, so the command layer can print it as is.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub mod mapped;
pub mod retention;
pub mod walk;

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

/// Whether `meta` belongs to this process's effective user; `Err` names who it belongs to.
pub fn check_mine(meta: &fs::Metadata) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    let owner = std::os::unix::fs::MetadataExt::uid(meta);
    if owner == me {
        Ok(())
    } else {
        Err(format!("owned by uid {owner}, not {me}"))
    }
}

/// Makes `dir` a private dir of this user: created 0700 (missing parents 0755) or, when it
/// exists, a real dir (not a symlink) owned by this user, its mode set back to 0700 if it
/// drifted. For kubeboot's own state (locks, backups, recoveries): a dir another user owns
/// or could write lets that user steer root's writes or hold its locks (issue 12).
pub fn private_dir(dir: &Path) -> Result<(), FsError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => {
            let refuse = |what: String| FsError::Io {
                op: "use private dir",
                path: dir.to_path_buf(),
                error: io::Error::new(io::ErrorKind::PermissionDenied, what),
            };
            if !meta.is_dir() {
                return Err(refuse("not a directory (a symlink is refused)".into()));
            }
            check_mine(&meta).map_err(refuse)?;
            if meta.permissions().mode() & 0o7777 != 0o700 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(FsError::io("chmod", dir))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = parent_of(dir);
            if !parent.is_dir() {
                create_dir_all_with_mode(parent, 0o755)?;
            }
            create_dir_all_with_mode(dir, 0o700)
        }
        Err(e) => Err(FsError::io("stat", dir)(e)),
    }
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

/// Keeps a copy of `path` at `<dir>/.<name>.kubeboot-<timestamp>` (a hard link) and leaves
/// `path` in place, for a file about to be replaced by [`write_atomic`]: a kill between the
/// two steps still leaves the old file where its reader looks. Dot-named, for dirs whose
/// readers skip dot-files only (the kubelet runs every other file in its static pod dir,
/// whatever the extension).
pub fn link_aside_hidden(path: &Path) -> Result<PathBuf, FsError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let target = aside_name(&parent_of(path).join(format!(".{name}")));
    fs::hard_link(path, &target).map_err(FsError::io("keep a copy of", path))?;
    fsync_dir(parent_of(path))?;
    Ok(target)
}

/// `<base>.kubeboot-<time>`, or with `-N` added for the first N that names nothing.
fn aside_name(base: &Path) -> PathBuf {
    let base = format!("{}.kubeboot-{}", base.display(), timestamp_suffix());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.symlink_metadata().is_ok() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    target
}

fn move_aside_as(path: &Path, base: &Path) -> Result<PathBuf, FsError> {
    let target = aside_name(base);
    fs::rename(path, &target).map_err(FsError::io("move aside", path))?;
    fsync_dir(parent_of(path))?;
    Ok(target)
}

/// Removes what a killed write left in `dir`: `.NAME.tmp-PID` files ([`write_atomic`]) and
/// `.NAME.kubeboot-tmp-PID` dirs (a secrets dir being built) of processes that are gone,
/// last changed at least `min_age` ago. They may hold keys, and nothing else ever removes
/// them. A link is removed, never followed. `min_age` is for dirs that a writer in another
/// PID namespace (the checkpointer's pod) shares: its PID means nothing here, but no write
/// of kubeboot's takes a minute.
pub fn remove_stale_temps(
    dir: &Path,
    min_age: std::time::Duration,
) -> Result<Vec<PathBuf>, FsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FsError::io("read dir", dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FsError::io("read dir", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = stale_temp_pid(&name) else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(FsError::io("stat", &path))?;
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
        if age.is_none_or(|age| age < min_age) {
            continue;
        }
        remove_entry(&path, &meta, "remove stale temp")?;
        removed.push(path);
    }
    if !removed.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Removes a dir entry whose `symlink_metadata` is `meta`: a dir with what is in it, anything
/// else (a link included: never followed) by itself.
pub fn remove_entry(path: &Path, meta: &fs::Metadata, op: &'static str) -> Result<(), FsError> {
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .map_err(FsError::io(op, path))
}

/// The writer's PID in a temp name kubeboot makes (`.x.tmp-12`, `.x.kubeboot-tmp-12`).
fn stale_temp_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, pid) = name
        .rsplit_once(".kubeboot-tmp-")
        .or_else(|| name.rsplit_once(".tmp-"))?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Keeps the `keep` newest copies [`move_aside`] made of `path` (`<path>.kubeboot-<time>`)
/// and removes the others: moved-aside secrets dirs hold keys, and would otherwise pile up
/// with every recovery. Returns what was removed.
pub fn prune_asides(path: &Path, keep: usize) -> Result<Vec<PathBuf>, FsError> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    prune(parent_of(path), keep, |n| retention::aside_stamp(&name, n))
}

/// Removes from `dir` every entry `stamp` accepts but the `keep` newest
/// ([`retention::beyond_newest`]): a dir with what is in it, a link by itself (never
/// followed). Returns what was removed, oldest first.
pub fn prune<F>(dir: &Path, keep: usize, stamp: F) -> Result<Vec<PathBuf>, FsError>
where
    F: Fn(&str) -> Option<&str>,
{
    let names: Vec<String> = fs::read_dir(dir)
        .map_err(FsError::io("read dir", dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut removed = Vec::new();
    for old in retention::beyond_newest(&names, keep, stamp) {
        let path = dir.join(old);
        let meta = fs::symlink_metadata(&path).map_err(FsError::io("stat", &path))?;
        remove_entry(&path, &meta, "remove old copy")?;
        removed.push(path);
    }
    if !removed.is_empty() {
        fsync_dir(dir)?;
    }
    Ok(removed)
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
    /// second process waits on it would let two processes hold "the" lock. Its dir is made
    /// [`private_dir`], and the file is opened without following a symlink and must be a
    /// regular file of this user: in a dir others can write, anyone could hold the lock or
    /// point it elsewhere.
    pub fn try_acquire(path: &Path) -> Result<LockFile, FsError> {
        private_dir(parent_of(path))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(FsError::io("open lock file", path))?;
        let meta = file.metadata().map_err(FsError::io("stat", path))?;
        let mine = match meta.is_file() {
            true => check_mine(&meta),
            false => Err("not a regular file".into()),
        };
        if let Err(what) = mine {
            return Err(FsError::Io {
                op: "open lock file",
                path: path.to_path_buf(),
                error: io::Error::new(io::ErrorKind::PermissionDenied, what),
            });
        }
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

    /// Issue 12, finding 3: a lock in a dir others can write can be held or redirected by
    /// them. Each case here is refused or repaired.
    #[test]
    fn lock_refuses_symlinks_and_foreign_dirs_and_repairs_modes() {
        let t = tempfile::tempdir().unwrap();
        // A drifted mode on kubeboot's own dir is set back to 0700.
        let dir = t.path().join("run/kubeboot");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        let held = LockFile::try_acquire(&dir.join("a.lock")).unwrap();
        assert_eq!(mode(&dir), 0o700);
        drop(held);
        // A symlink planted at the lock's name is not followed.
        let target = t.path().join("elsewhere");
        fs::write(&target, "x").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("b.lock")).unwrap();
        let err = LockFile::try_acquire(&dir.join("b.lock")).unwrap_err();
        assert!(err.to_string().contains("b.lock"), "{err}");
        // A lock dir that is a symlink is refused.
        std::os::unix::fs::symlink(&dir, t.path().join("link")).unwrap();
        let err = LockFile::try_acquire(&t.path().join("link/c.lock")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        // A lock dir owned by another user is refused, never chmodded.
        let foreign = t.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::set_permissions(&foreign, fs::Permissions::from_mode(0o777)).unwrap();
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let err = LockFile::try_acquire(&foreign.join("d.lock")).unwrap_err();
            assert!(err.to_string().contains("owned by uid 65534"), "{err}");
            assert_eq!(mode(&foreign), 0o777);
            // A lock file someone else created in our dir is refused too.
            let f = dir.join("e.lock");
            fs::write(&f, "").unwrap();
            std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
            assert!(LockFile::try_acquire(&f).is_err());
        }
    }

    #[test]
    fn stale_temps_of_dead_writers_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        // PID 0 is never a process of ours; 1 (init) is alive.
        fs::write(dir.join(".ca.key.tmp-999999999"), "key").unwrap();
        fs::create_dir(dir.join(".bootstrap-secrets.kubeboot-tmp-999999998")).unwrap();
        fs::write(
            dir.join(".bootstrap-secrets.kubeboot-tmp-999999998/k"),
            "key",
        )
        .unwrap();
        fs::write(dir.join(".live.tmp-1"), "").unwrap();
        fs::write(dir.join(format!(".mine.tmp-{}", std::process::id())), "").unwrap();
        fs::write(dir.join("ca.key"), "key").unwrap();
        fs::write(dir.join(".not-a-temp.tmp-x1"), "").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join(".link.tmp-999999997")).unwrap();
        // Too young for a dir shared with writers in other PID namespaces.
        let minute = std::time::Duration::from_secs(60);
        assert!(remove_stale_temps(dir, minute).unwrap().is_empty());
        let mut removed: Vec<_> = remove_stale_temps(dir, std::time::Duration::ZERO)
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                ".bootstrap-secrets.kubeboot-tmp-999999998",
                ".ca.key.tmp-999999999",
                ".link.tmp-999999997"
            ]
        );
        assert!(Path::new("/etc/passwd").exists());
        for kept in ["ca.key", ".live.tmp-1", ".not-a-temp.tmp-x1"] {
            assert!(dir.join(kept).exists(), "{kept}");
        }
        assert!(
            remove_stale_temps(&dir.join("absent"), minute)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn only_the_newest_asides_are_kept() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("bootstrap-secrets");
        for ts in [
            "20260101T000000.000000Z",
            "20260301T000000.000000Z",
            "20260201T000000.000000Z",
        ] {
            let aside = t.path().join(format!("bootstrap-secrets.kubeboot-{ts}"));
            fs::create_dir(&aside).unwrap();
            fs::write(aside.join("ca.key"), "k").unwrap();
        }
        fs::create_dir(&p).unwrap();
        fs::create_dir(t.path().join("bootstrap-secrets.kubeboot-notes")).unwrap();
        let removed = prune_asides(&p, 2).unwrap();
        assert_eq!(
            removed,
            [t.path()
                .join("bootstrap-secrets.kubeboot-20260101T000000.000000Z")]
        );
        assert!(p.is_dir());
        assert!(t.path().join("bootstrap-secrets.kubeboot-notes").is_dir());
        assert!(prune_asides(&p, 2).unwrap().is_empty());
        assert_eq!(prune_asides(&p, 0).unwrap().len(), 2);
    }
}
