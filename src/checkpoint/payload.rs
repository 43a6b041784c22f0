//! One volume dir of a checkpoint, written the way the kubelet writes Secret and
//! ConfigMap volumes (its `AtomicWriter`, pkg/volume/util/atomic_writer.go): the files
//! live in a `..kubeboot-<time>` dir, `..data` is a symlink to it, and each visible
//! name is a symlink into `..data`. An update writes a new dir and swaps `..data` with
//! one rename.
//!
//! Why not a temp dir renamed over the old one, or files replaced one by one: a running
//! checkpoint has the volume dir bind-mounted, and a bind mount keeps the inode it was
//! given, so a replaced dir would leave the pod with the old, deleted one; and files
//! replaced one at a time let a reader see a new certificate with the old key. With the
//! symlink swap the dir's inode stays, every reader sees one whole version, and the
//! layout is the one containers already read from Secret volumes. Keys gone from the
//! object are pruned (bootkube never pruned them).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::volumes::check_rel_path;
use crate::fsutil::{self, FsError};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";
const VERSION_PREFIX: &str = "..kubeboot-";

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path, checked.
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// How the dirs and files of one volume are owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    /// The mode of the volume dir and every dir in it. Dirs stay this process's own, with
    /// the gid of `owner` (so a 0750 mode lets an fsGroup in): only files are given away.
    pub dir_mode: u32,
    /// `(uid, gid)` to chown files to; `None` when not running as root (files stay ours).
    pub owner: Option<(u32, u32)>,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError {
    FsError::io(op, path)
}

/// Checks the paths of `files`: relative, normalized, and none under a `..` name.
pub fn check(files: &[File]) -> Result<(), String> {
    for f in files {
        check_rel_path(&f.path).map_err(|r| format!("path {:?} is not safe ({r})", f.path))?;
        if f.path.split('/').any(|p| p.starts_with("..")) {
            return Err(format!("path {:?} starts with ..", f.path));
        }
    }
    Ok(())
}

/// Gives a file to the pod's user. Never a dir: see [`Ownership`].
fn own(path: &Path, o: &Ownership) -> Result<(), FsError> {
    match o.owner {
        Some((uid, gid)) => {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))
        }
        None => Ok(()),
    }
}

/// Creates a dir of the volume, or checks an existing one: a real dir (a link is refused,
/// never followed), owned by this process, with `dir_mode` and the files' group.
fn make_dir(path: &Path, o: &Ownership) -> Result<(), FsError> {
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create dir", path)(e)),
    }
    // Opened without following a link, then checked and changed through that handle only,
    // so nothing swapped in at `path` is ever chmodded.
    let dir = fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY).bits() as i32)
        .open(path)
        .map_err(io_err("open dir (a link is refused)", path))?;
    let meta = dir.metadata().map_err(io_err("stat", path))?;
    fsutil::check_mine(&meta).map_err(|what| {
        io_err("use dir", path)(io::Error::new(io::ErrorKind::PermissionDenied, what))
    })?;
    dir.set_permissions(fs::Permissions::from_mode(o.dir_mode))
        .map_err(io_err("chmod", path))?;
    if let Some((_, gid)) = o.owner {
        std::os::unix::fs::fchown(&dir, None, Some(gid)).map_err(io_err("chgrp", path))?;
    }
    Ok(())
}

/// The first element of each path: the names visible in the volume dir.
fn top_names(files: &[File]) -> BTreeSet<&str> {
    files
        .iter()
        .filter_map(|f| f.path.split('/').next())
        .collect()
}

/// Whether `version` holds exactly `files`, with their modes and owner.
fn same(version: &Path, files: &[File], o: &Ownership) -> bool {
    let each = files.iter().all(|f| {
        let p = version.join(&f.path);
        let Ok(meta) = fs::symlink_metadata(&p) else {
            return false;
        };
        let owner_ok = o
            .owner
            .is_none_or(|(u, g)| meta.uid() == u && meta.gid() == g);
        meta.is_file()
            && meta.permissions().mode() & 0o7777 == f.mode
            && owner_ok
            && fs::read(&p).is_ok_and(|b| b == f.bytes)
    });
    each && count_files(version) == Some(files.len())
}

fn count_files(dir: &Path) -> Option<usize> {
    let mut n = 0;
    for e in fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        let t = e.file_type().ok()?;
        if t.is_dir() {
            n += count_files(&e.path())?;
        } else {
            n += 1;
        }
    }
    Some(n)
}

/// Makes `dir` hold exactly `files`. Returns whether anything was written. Paths must
/// have passed [`check`]. The dir's parents must exist.
pub fn write(dir: &Path, files: &[File], o: &Ownership) -> Result<bool, FsError> {
    reclaim(dir)?;
    make_dir(dir, o)?;
    let current = fs::read_link(dir.join(DATA)).ok();
    let unchanged = current
        .as_ref()
        .is_some_and(|v| same(&dir.join(v), files, o));
    let version = match (&current, unchanged) {
        (Some(v), true) => v.to_string_lossy().into_owned(),
        _ => {
            let name = format!("{VERSION_PREFIX}{}", fsutil::timestamp_suffix());
            write_version(&dir.join(&name), files, o)?;
            let tmp = dir.join(DATA_TMP);
            let _ = fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&name, &tmp).map_err(io_err("symlink", &tmp))?;
            fs::rename(&tmp, dir.join(DATA)).map_err(io_err("rename into", &dir.join(DATA)))?;
            name
        }
    };
    let links = link_names(dir, files)?;
    prune(dir, files, &version)?;
    if !unchanged || links {
        fsutil::fsync_dir(dir)?;
    }
    Ok(!unchanged || links)
}

/// Removes what stands at `dir` if it is not a dir of this process: a link, a file, or a
/// volume dir an older kubeboot gave to the pod's user (who could have planted links in
/// it). Removal never follows a link; the next write makes the dir again, root's. A
/// checkpoint running at that moment keeps its bind mount of the old dir until it restarts.
fn reclaim(dir: &Path) -> Result<(), FsError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("stat", dir)(e)),
    };
    let why = match meta.is_dir() {
        true => match fsutil::check_mine(&meta) {
            Ok(()) => return Ok(()),
            Err(owner) => owner,
        },
        false => "not a dir".into(),
    };
    tracing::warn!(
        "{}: {why} (an older kubeboot's, or planted); removing it",
        dir.display()
    );
    fsutil::remove_entry(dir, &meta, "remove")
}

fn write_version(version: &Path, files: &[File], o: &Ownership) -> Result<(), FsError> {
    make_dir(version, o)?;
    let mut dirs = BTreeSet::new();
    for f in files {
        let path = version.join(&f.path);
        let parent = fsutil::parent_of(&path).to_path_buf();
        let mut missing = Vec::new();
        let mut d = parent.clone();
        while d != *version && !d.is_dir() {
            missing.push(d.clone());
            match d.parent() {
                Some(p) => d = p.to_path_buf(),
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            make_dir(&d, o)?;
        }
        let _ = fs::remove_file(&path); // an earlier source of a projection
        fsutil::write_new(&path, &f.bytes, f.mode)?;
        own(&path, o)?;
        dirs.insert(parent);
    }
    dirs.insert(version.to_path_buf());
    for d in &dirs {
        fsutil::fsync_dir(d)?;
    }
    Ok(())
}

/// Each visible name is a symlink `name → ..data/name`. Returns whether one changed.
fn link_names(dir: &Path, files: &[File]) -> Result<bool, FsError> {
    let mut changed = false;
    for name in top_names(files) {
        let path = dir.join(name);
        let target = format!("{DATA}/{name}");
        if fs::read_link(&path).is_ok_and(|t| t.as_os_str() == target.as_str()) {
            continue;
        }
        let tmp = dir.join(format!("{DATA_TMP}-{name}"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(io_err("symlink", &tmp))?;
        if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        }
        fs::rename(&tmp, &path).map_err(io_err("rename into", &path))?;
        changed = true;
    }
    Ok(changed)
}

/// Removes visible names no longer in `files` and versions other than `keep`. The
/// volume dir is this daemon's alone.
fn prune(dir: &Path, files: &[File], keep: &str) -> Result<(), FsError> {
    let names = top_names(files);
    for entry in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let entry = entry.map_err(io_err("read dir", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_version = name.starts_with(VERSION_PREFIX) && name != keep;
        let stale_name = !name.starts_with("..") && !names.contains(name.as_str());
        if !(stale_version || stale_name) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let r = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        r.map_err(io_err("remove", &path))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
