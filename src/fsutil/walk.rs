//! A descriptor-based walk down a tree of root's private dirs (issue 12, finding 1).
//!
//! `create_dir_all_with_mode` asks `is_dir()` of each path, which follows a symlink, and
//! leaves an existing dir's owner and mode as they are: a link planted anywhere on the
//! way (`checkpoints/secrets/<ns>` → `/etc/kubernetes/manifests`) would carry every
//! write below it elsewhere. Here each component is made with `mkdirat` and opened with
//! `openat(O_NOFOLLOW | O_DIRECTORY)` relative to its parent's descriptor, so a link is
//! refused, never followed; each must be this user's (else refused) and is given `mode`
//! through its descriptor. Once every dir from the root down is this user's and
//! writable by no one else, nobody else can plant anything below it, so the path-based
//! writes under it (payload.rs, `write_atomic`) cannot be redirected.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags};

use super::FsError;

fn refuse(path: &Path, what: String) -> FsError {
    FsError::Io {
        op: "use private dir",
        path: path.to_path_buf(),
        error: io::Error::new(io::ErrorKind::PermissionDenied, what),
    }
}

/// Opens the dir `name` under `parent` without following a link, checks it is this
/// user's and sets `mode` on it if it differs.
fn enter(parent: &OwnedFd, name: &Path, path: &Path, mode: u32) -> Result<OwnedFd, FsError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|e| match e {
        // ELOOP: a symlink; ENOTDIR: something else.
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            refuse(path, "not a directory (a symlink is refused)".into())
        }
        e => FsError::io("open dir", path)(e.into()),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io("stat", path)(e.into()))?;
    let me = rustix::process::geteuid().as_raw();
    if st.st_uid != me {
        return Err(refuse(
            path,
            format!("owned by uid {}, not {me}", st.st_uid),
        ));
    }
    if st.st_mode & 0o7777 != mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| FsError::io("chmod", path)(e.into()))?;
    }
    Ok(fd)
}

/// Makes `root/rel` and every dir between them exist as real dirs of this user with
/// exactly `mode`, walking by descriptor from `root` (made [`super::private_dir`] first:
/// a link or another user's dir there is refused, never followed). `rel` must be
/// relative and plain (no `..`).
pub fn private_tree(root: &Path, rel: &Path, mode: u32) -> Result<(), FsError> {
    super::private_dir(root)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::openat(rustix::fs::CWD, root, flags, Mode::empty())
        .map_err(|e| FsError::io("open dir", root)(e.into()))?;
    let mut path = root.to_path_buf();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(refuse(&root.join(rel), "not a plain relative path".into()));
        };
        path.push(name);
        match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(FsError::io("create dir", &path)(e.into())),
        }
        fd = enter(&fd, Path::new(name), &path, mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn dirs_are_made_and_drifted_modes_set_back() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("checkpoints");
        private_tree(&root, Path::new("secrets/ns/pod"), 0o700).unwrap();
        assert_eq!(mode(&root.join("secrets/ns/pod")), 0o700);
        fs::set_permissions(root.join("secrets"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        private_tree(&root, Path::new("secrets/ns/pod"), 0o700).unwrap();
        assert_eq!(mode(&root.join("secrets")), 0o700);
        assert_eq!(mode(&root), 0o700);
        private_tree(&root, Path::new(""), 0o700).unwrap();
        assert!(private_tree(&root, Path::new("secrets/../x"), 0o700).is_err());
        assert!(!root.join("x").exists());
    }

    /// A link planted on the way is refused: nothing is made, chmodded or written
    /// through it.
    #[test]
    fn a_planted_link_is_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("checkpoints");
        let target = t.path().join("manifests");
        fs::create_dir_all(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(root.join("secrets")).unwrap();
        std::os::unix::fs::symlink(&target, root.join("secrets/ns")).unwrap();
        let e = private_tree(&root, Path::new("secrets/ns/pod"), 0o700).unwrap_err();
        assert!(e.to_string().contains("symlink is refused"), "{e}");
        assert!(e.to_string().contains("secrets/ns"), "{e}");
        assert_eq!(
            fs::read_dir(&target).unwrap().count(),
            0,
            "nothing made there"
        );
        assert_eq!(mode(&target), 0o755, "never chmodded");
        // A file in the way is refused too, and so is a root that is a link.
        fs::write(root.join("configmaps"), "").unwrap();
        assert!(private_tree(&root, Path::new("configmaps/ns"), 0o700).is_err());
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        assert!(private_tree(&link, Path::new("secrets"), 0o700).is_err());
    }
}
