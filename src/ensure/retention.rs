//! The recovery root's housekeeping (issue 12, finding 5). Every recovery `ensure` makes
//! leaves an asset dir under `--recovery-root` holding the cluster's CA and
//! service-account keys and admin kubeconfig, kept for the record; a killed run leaves
//! its temp dirs (a half-written asset dir, a decrypted backup snapshot). Nothing else
//! removes them, so each run does, with the same rule `start` applies to moved-aside
//! bootstrap secrets (`--keep-moved-aside`): the newest `--keep-recoveries` are kept.
//! The decision is [`fsutil::retention`]'s, tested on names there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fsutil::{self, FsError, retention};

/// At the start of a run that may write: when `root` exists, it must be a real dir of
/// this user (its mode is set back to 0700 if it drifted; anything else is refused),
/// the temp files and dirs of killed writers are removed (`assets::write`'s
/// `.<dir>.tmp-PID`, the local marker's `.restore-marker.json.tmp-PID`, a decrypted
/// snapshot's `.kubeboot-decrypted-*.kubeboot-tmp-PID`), and only the `keep` newest
/// recovered asset dirs stay. A missing root is left missing. Returns what was removed.
pub fn tidy(root: &Path, keep: usize) -> Result<Vec<PathBuf>, FsError> {
    if root.symlink_metadata().is_err() {
        return Ok(Vec::new());
    }
    fsutil::private_dir(root)?;
    // Only this node's kubeboot writes here, in this PID namespace (`ensure` under its
    // lock, `recover` when pointed here): a writer's PID that is gone is a killed one.
    let mut removed = fsutil::remove_stale_temps(root, Duration::ZERO)?;
    removed.extend(fsutil::prune(root, keep, retention::recovery_stamp)?);
    Ok(removed)
}

/// After a recovery wrote `current` under `root`: `current` and the `keep` newest
/// earlier asset dirs stay.
pub fn prune_after(root: &Path, current: &Path, keep: usize) -> Result<Vec<PathBuf>, FsError> {
    let current = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    fsutil::prune(root, keep, |n| {
        retention::recovery_stamp(n).filter(|_| current.as_deref() != Some(n))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    const A: &str = "20260101T000000.000000Z-etcd";
    const B: &str = "20260102T000000.000000Z-apiserver";
    const C: &str = "20260103T000000.000000Z-local-etcd-data";

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn tidy_keeps_the_newest_the_marker_and_live_temps_and_fixes_the_mode() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("recovery");
        assert!(tidy(&root, 1).unwrap().is_empty());
        assert!(!root.exists(), "a missing root is not made");
        for d in [A, B, C] {
            fs::create_dir_all(root.join(d).join("tls")).unwrap();
            fs::write(root.join(d).join("tls/ca.key"), "key").unwrap();
        }
        fs::write(root.join("restore-marker.json"), "{}").unwrap();
        fs::create_dir(root.join(".kubeboot-decrypted-x1.kubeboot-tmp-999999999")).unwrap();
        fs::create_dir(root.join(format!(".{C}.tmp-999999998"))).unwrap();
        fs::write(root.join(".restore-marker.json.tmp-999999997"), "{}").unwrap();
        let live = format!(".kubeboot-decrypted-x2.kubeboot-tmp-{}", std::process::id());
        fs::create_dir(root.join(&live)).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let removed = tidy(&root, 1).unwrap();
        assert_eq!(removed.len(), 5, "{removed:?}");
        assert_eq!(names(&root), [live.as_str(), C, "restore-marker.json"]);
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o7777,
            0o700
        );
    }

    #[test]
    fn after_a_recovery_its_own_dir_is_kept_beside_the_earlier_ones() {
        let t = tempfile::tempdir().unwrap();
        for d in [A, B, C] {
            fs::create_dir(t.path().join(d)).unwrap();
        }
        // The current one is kept even when the clock put it before the others.
        let current = t.path().join(A);
        assert_eq!(
            prune_after(t.path(), &current, 1).unwrap(),
            [t.path().join(B)]
        );
        assert_eq!(names(t.path()), [A, C]);
        prune_after(t.path(), &current, 0).unwrap();
        assert_eq!(names(t.path()), [A]);
    }

    #[test]
    fn a_root_that_is_a_link_or_not_a_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::create_dir(real.join(A)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = tidy(&link, 0).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(real.join(A).exists(), "nothing removed through the link");
        let file = t.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(tidy(&file, 0).is_err());
    }
}
