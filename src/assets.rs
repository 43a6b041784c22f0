//! Puts an [`AssetDir`] on disk, and reads one back for `start`.
//!
//! Writing follows docs/design.md §5: the whole tree is built in a sibling temp dir
//! (`.<name>.tmp-<pid>`), every file written with its mode and fsynced, then renamed
//! into place in one step, so `DIR` is either absent/old or complete, never half
//! written; on any error the temp dir is removed. An existing non-empty `DIR` is only
//! replaced with `force`, and then it is moved aside with a timestamp, never deleted.
//!
//! Modes: files keep the mode the renderer chose; a dir is 0700 when it holds,
//! at any depth, a file without group/other bits (a secret), else 0755. So `tls/`,
//! `auth/` and the asset dir itself are 0700, and `bootstrap-manifests/` is 0755.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{self, FsError};
use crate::model::AssetDir;

#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    #[error("refusing to write into non-empty --recovery-dir {} (use --force)", .0.display())]
    NotEmpty(PathBuf),
    #[error("asset path {0:?} is not a normalized relative path")]
    BadPath(String),
    #[error("writing asset {path} into {}: {error}", dir.display())]
    Write {
        dir: PathBuf,
        path: String,
        error: FsError,
    },
    #[error("{}: not a regular file or directory", .0.display())]
    NotRegular(PathBuf),
    #[error("{} exists and is not a directory", .0.display())]
    NotADir(PathBuf),
    #[error("{}: file name is not UTF-8", .0.display())]
    NonUtf8(PathBuf),
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Checks an asset path: relative, `/`-separated, no empty, `.` or `..` element.
fn check_path(path: &str) -> Result<(), AssetsError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|p| !matches!(p, "" | "." | ".."));
    if ok {
        Ok(())
    } else {
        Err(AssetsError::BadPath(path.to_string()))
    }
}

/// The mode of every dir (relative, `""` for the root) the assets need; see module doc.
fn dir_modes(assets: &AssetDir) -> BTreeMap<String, u32> {
    let mut modes: BTreeMap<String, u32> = BTreeMap::new();
    for (path, asset) in &assets.files {
        let private = asset.mode & 0o077 == 0;
        let mut dir = path.as_str();
        loop {
            dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
            let m = modes.entry(dir.to_string()).or_insert(0o755);
            if private {
                *m = 0o700;
            }
            if dir.is_empty() {
                break;
            }
        }
    }
    modes.entry(String::new()).or_insert(0o755);
    modes
}

/// Fails fast, before any source is read, on a target [`write`] would refuse: a
/// non-empty `dir` without `force`. A missing or unreadable dir is left to `write`.
pub fn check_target(dir: &Path, force: bool) -> Result<(), AssetsError> {
    match dir.symlink_metadata() {
        Ok(m) if !m.is_dir() => Err(AssetsError::NotADir(dir.to_path_buf())),
        Ok(_) if !force && !is_empty_dir(dir)? => Err(AssetsError::NotEmpty(dir.to_path_buf())),
        _ => Ok(()),
    }
}

fn is_empty_dir(dir: &Path) -> Result<bool, AssetsError> {
    let mut entries = fs::read_dir(dir).map_err(FsError::io("read dir", dir))?;
    Ok(entries.next().is_none())
}

/// Writes `assets` as the new `dir`. See the module doc. Returns where a replaced
/// `dir` was moved, so the caller can say so.
pub fn write(dir: &Path, assets: &AssetDir, force: bool) -> Result<Option<PathBuf>, AssetsError> {
    for path in assets.files.keys() {
        check_path(path)?;
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| AssetsError::BadPath(dir.display().to_string()))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fsutil::create_dir_all_with_mode(&parent, 0o755)?;

    let existing = match dir.symlink_metadata() {
        Err(_) => None,
        Ok(m) if !m.is_dir() => return Err(AssetsError::NotADir(dir.to_path_buf())),
        Ok(m) if m.is_dir() && is_empty_dir(dir)? => None,
        Ok(_) if !force => return Err(AssetsError::NotEmpty(dir.to_path_buf())),
        Ok(_) => Some(()),
    };

    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.symlink_metadata().is_ok() {
        // Only a crashed run of ours with the same pid leaves this; it is partial.
        fs::remove_dir_all(&tmp).map_err(FsError::io("remove stale temp dir", &tmp))?;
    }
    if let Err(e) = build(&tmp, assets) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let moved = match existing {
        Some(()) => match fsutil::move_aside(dir) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
        },
        None => None,
    };
    if let Err(e) = fs::rename(&tmp, dir) {
        let _ = fs::remove_dir_all(&tmp);
        if let Some(old) = moved {
            let _ = fs::rename(old, dir);
        }
        return Err(FsError::io("rename into place", dir)(e).into());
    }
    fsutil::fsync_dir(&parent)?;
    Ok(moved)
}

/// Creates the complete tree at `root` (which must not exist).
fn build(root: &Path, assets: &AssetDir) -> Result<(), AssetsError> {
    let modes = dir_modes(assets);
    let werr = |path: &str| {
        let (dir, path) = (root.to_path_buf(), path.to_string());
        move |error| AssetsError::Write { dir, path, error }
    };
    // Parents come before children in the sorted map.
    for (rel, mode) in &modes {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        fs::DirBuilder::new()
            .create(&p)
            .map_err(FsError::io("create dir", &p))
            .and_then(|()| {
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode))
                    .map_err(FsError::io("chmod", &p))
            })
            .map_err(werr(rel))?;
    }
    for (rel, asset) in &assets.files {
        fsutil::write_new(&root.join(rel), &asset.bytes, asset.mode).map_err(werr(rel))?;
    }
    for rel in modes.keys().rev() {
        fsutil::fsync_dir(&root.join(rel)).map_err(werr(rel))?;
    }
    Ok(())
}

/// Reads the asset dir at `dir`: every regular file, with its mode.
pub fn read(dir: &Path) -> Result<AssetDir, AssetsError> {
    let mut out = AssetDir::default();
    read_into(dir, "", &mut out)?;
    Ok(out)
}

fn read_into(dir: &Path, prefix: &str, out: &mut AssetDir) -> Result<(), AssetsError> {
    let entries = fs::read_dir(dir).map_err(FsError::io("read dir", dir))?;
    for entry in entries {
        let entry = entry.map_err(FsError::io("read dir", dir))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| AssetsError::NonUtf8(path.clone()))?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = entry.file_type().map_err(FsError::io("stat", &path))?;
        if meta.is_dir() {
            read_into(&path, &rel, out)?;
        } else if meta.is_file() {
            let bytes = fs::read(&path).map_err(FsError::io("read", &path))?;
            let mode = fs::metadata(&path)
                .map_err(FsError::io("stat", &path))?
                .permissions()
                .mode()
                & 0o7777;
            out.insert(rel, bytes, mode);
        } else {
            return Err(AssetsError::NotRegular(path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MODE_PUBLIC, MODE_SECRET};

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn sample() -> AssetDir {
        let mut a = AssetDir::default();
        a.insert(
            "bootstrap-manifests/bootstrap-x.yaml",
            "kind: Pod\n",
            MODE_PUBLIC,
        );
        a.insert("tls/secrets/s/k", "secret", MODE_SECRET);
        a.insert("tls/config-maps/c/sub/k", "cm", 0o400);
        a.insert("auth/kubeconfig", "kc", MODE_SECRET);
        a.insert("kubeboot.json", "{}\n", MODE_PUBLIC);
        a
    }

    fn siblings(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn modes_and_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("recovered");
        write(&d, &sample(), false).unwrap();
        let cases = [
            ("", 0o700),
            ("tls", 0o700),
            ("tls/secrets/s", 0o700),
            ("tls/config-maps/c/sub", 0o700),
            ("auth", 0o700),
            ("bootstrap-manifests", 0o755),
            ("tls/secrets/s/k", 0o600),
            ("tls/config-maps/c/sub/k", 0o400),
            ("auth/kubeconfig", 0o600),
            ("kubeboot.json", 0o644),
        ];
        for (rel, want) in cases {
            assert_eq!(mode(&d.join(rel)), want, "{rel}");
        }
        assert_eq!(read(&d).unwrap(), sample());
        assert_eq!(siblings(&d), ["recovered"], "no temp dir left");
    }

    #[test]
    fn public_only_tree_is_0755() {
        let mut a = AssetDir::default();
        a.insert("m/x.yaml", "x", MODE_PUBLIC);
        assert_eq!(
            dir_modes(&a),
            BTreeMap::from([(String::new(), 0o755), ("m".into(), 0o755)])
        );
    }

    #[test]
    fn empty_dir_is_replaced_non_empty_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("r");
        fs::create_dir(&d).unwrap();
        write(&d, &sample(), false).unwrap();
        let err = write(&d, &sample(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to write into non-empty --recovery-dir {} (use --force)",
                d.display()
            )
        );
    }

    #[test]
    fn force_moves_old_dir_aside() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("r");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("old"), b"precious").unwrap();
        write(&d, &sample(), true).unwrap();
        assert_eq!(read(&d).unwrap(), sample());
        let names = siblings(&d);
        assert_eq!(names.len(), 2, "{names:?}");
        let aside = t.path().join(&names[1]);
        assert!(names[1].starts_with("r.kubeboot-"), "{names:?}");
        assert_eq!(fs::read(aside.join("old")).unwrap(), b"precious");
    }

    #[test]
    fn failure_leaves_nothing_behind() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("r");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("old"), b"precious").unwrap();
        // "tls" is both a file and a dir: the write fails half-way.
        let mut bad = sample();
        bad.insert("tls", "collides", MODE_SECRET);
        let err = write(&d, &bad, true).unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
        assert_eq!(siblings(&d), ["r"]);
        assert_eq!(
            fs::read(d.join("old")).unwrap(),
            b"precious",
            "old dir untouched"
        );
    }

    #[test]
    fn bad_paths_are_rejected() {
        let t = tempfile::tempdir().unwrap();
        for p in ["/etc/passwd", "../x", "a/../b", "a//b", "./a", ""] {
            let mut a = AssetDir::default();
            a.insert(p, "x", MODE_PUBLIC);
            let err = write(&t.path().join("r"), &a, false).unwrap_err();
            assert!(matches!(err, AssetsError::BadPath(_)), "{p}: {err}");
        }
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
