//! The kubelet's atomic writer for secret, configMap, downwardAPI and projected volumes
//! (`pkg/volume/util/atomic_writer.go`), so a process that re-reads a mounted file while
//! the kubelet refreshes it never sees a half-written file or a mix of old and new keys:
//! the payload is written into a fresh `..<timestamp>` dir, the `..data` symlink is
//! swapped to it by `rename(2)`, and every top-level name is a symlink through `..data`.
//!
//! *Guarantees:* a reader sees either the old or the new payload; an unchanged payload
//! (same paths, bytes and modes) is not rewritten. *Caveats:* like the real writer, a
//! top-level name that exists but is not a symlink is left alone.

use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

/// One file of a volume's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative path inside the volume; checked by [`valid_path`].
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

const DATA: &str = "..data";

/// True for a relative path with no `..` element (the API's `items[].path` rule).
pub fn valid_path(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && !p.starts_with("..")
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn unchanged(dir: &Path, files: &[File]) -> bool {
    let data = dir.join(DATA);
    if !data.is_dir() {
        return false;
    }
    let same = files.iter().all(|f| {
        let p = data.join(&f.path);
        let mode = std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o7777);
        mode.is_ok_and(|m| m == f.mode) && std::fs::read(&p).is_ok_and(|d| d == f.data)
    });
    same && top_level(files) == current_links(dir)
}

fn top_level(files: &[File]) -> std::collections::BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| f.path.split('/').find(|s| !s.is_empty() && *s != "."))
        .map(str::to_string)
        .collect()
}

/// User-visible names that are our symlinks into `..data`.
fn current_links(dir: &Path) -> std::collections::BTreeSet<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with(".."))
        .collect()
}

/// Makes `dir` hold exactly `files`, atomically. Paths must pass [`valid_path`].
pub fn write(dir: &Path, files: &[File]) -> io::Result<()> {
    if let Some(bad) = files.iter().find(|f| !valid_path(&f.path)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path {:?} in volume payload", bad.path),
        ));
    }
    std::fs::create_dir_all(dir)?;
    if unchanged(dir, files) {
        return Ok(());
    }
    let stamp = format!("..{}.", jiff::Timestamp::now().as_nanosecond());
    let ts = tempfile::Builder::new()
        .prefix(&stamp)
        .tempdir_in(dir)?
        .keep();
    std::fs::set_permissions(&ts, std::fs::Permissions::from_mode(0o755))?;
    for f in files {
        let p = ts.join(&f.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, &f.data)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))?;
    }
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    let name = ts.file_name().unwrap_or_default();
    symlink(name, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join(DATA))?;
    let want = top_level(files);
    for n in &want {
        let link = dir.join(n);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(n), &link)?;
        }
    }
    for n in current_links(dir).difference(&want) {
        std::fs::remove_file(dir.join(n))?;
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != name) {
        std::fs::remove_dir_all(dir.join(old))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, data: &str, mode: u32) -> File {
        File {
            path: path.into(),
            data: data.into(),
            mode,
        }
    }

    #[test]
    fn paths() {
        for ok in ["a", "a/b", "./a", "a..b"] {
            assert!(valid_path(ok), "{ok}");
        }
        for bad in ["", "/a", "../a", "a/../b", "..data"] {
            assert!(!valid_path(bad), "{bad}");
        }
    }

    #[test]
    fn swap_update_and_remove() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path();
        write(d, &[f("a", "1", 0o640), f("sub/b", "2", 0o600)])?;
        assert_eq!(std::fs::read_to_string(d.join("a"))?, "1");
        assert_eq!(std::fs::read_to_string(d.join("sub/b"))?, "2");
        let mode = std::fs::metadata(d.join("a"))?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let first = std::fs::read_link(d.join(DATA))?;
        write(d, &[f("a", "1", 0o640), f("sub/b", "2", 0o600)])?;
        assert_eq!(std::fs::read_link(d.join(DATA))?, first, "no-op rewrite");
        write(d, &[f("a", "3", 0o644)])?;
        assert_eq!(std::fs::read_to_string(d.join("a"))?, "3");
        assert!(std::fs::symlink_metadata(d.join("sub")).is_err());
        assert!(!d.join(&first).exists(), "old payload removed");
        assert!(write(d, &[f("../x", "", 0o644)]).is_err());
        Ok(())
    }
}
