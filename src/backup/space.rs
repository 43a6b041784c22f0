//! Room for a backup, checked before a byte is written: a size cap (`--max-size`) and
//! the free space of the backup dir's file system. A backup that fills the disk of a
//! master takes etcd or the kubelet down with it (both write beside it on most hosts),
//! which is worse than the missing backup.
//!
//! The size to expect is etcd's own database size (the Maintenance/Status answer), which
//! a snapshot matches to within its trailer: etcd streams the bbolt file as it is. An
//! encrypted backup holds the plain files and the archive at once while it is sealed,
//! so it needs twice that. The cap is checked again while the snapshot streams (a
//! database can grow between the two), and a disk that fills anyway fails the write,
//! which removes the staging dir: in every case nothing is half-written.

use std::path::Path;

/// `--max-size`'s default: 8 GiB, etcd's suggested largest `--quota-backend-bytes`,
/// so only a database past what etcd itself supports is refused out of the box.
pub const DEFAULT_MAX_SIZE: u64 = 8 << 30;
/// Left free on the file system besides the backup, so the write that fills it is not
/// the one that takes the node's other writers down.
pub const RESERVE: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    #[error("the snapshot would be {size} bytes, over --max-size {cap}; nothing written")]
    OverCap { size: u64, cap: u64 },
    #[error(
        "{dir}: {free} bytes free, the backup needs {needed} (and {RESERVE} kept free); nothing written"
    )]
    NoRoom { dir: String, free: u64, needed: u64 },
}

/// Bytes a backup of a `db_size` database needs on disk while it is built.
pub fn needed(db_size: u64, encrypted: bool) -> u64 {
    let copies = if encrypted { 2 } else { 1 };
    db_size.saturating_mul(copies)
}

/// The decision, pure: a snapshot of `db_size` bytes under `cap`, and room for it in
/// `free` bytes with [`RESERVE`] left over.
pub fn check(
    dir: &Path,
    db_size: u64,
    cap: u64,
    encrypted: bool,
    free: u64,
) -> Result<(), SpaceError> {
    if db_size > cap {
        return Err(SpaceError::OverCap { size: db_size, cap });
    }
    let needed = needed(db_size, encrypted);
    if needed > free.saturating_sub(RESERVE) {
        return Err(SpaceError::NoRoom {
            dir: dir.display().to_string(),
            free,
            needed,
        });
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Parses a size: bytes, or a number with `K`/`KiB`, `M`/`MiB`, `G`/`GiB`, `T`/`TiB`
/// (powers of 1024, as etcd's and the kubelet's quantities in `Ki`/`Mi`/`Gi`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512MiB or 8GiB"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "Ki" | "KiB" => 10,
        "M" | "Mi" | "MiB" => 20,
        "G" | "Gi" | "GiB" => 30,
        "T" | "Ti" | "TiB" => 40,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("8G"), Ok(8 << 30));
        assert_eq!(parse_size("2Ti"), Ok(2 << 40));
        assert!(parse_size("8GB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn the_cap_and_the_free_space_are_checked_before_writing() {
        let dir = Path::new("/backups");
        let mib = 1u64 << 20;
        assert_eq!(check(dir, 10 * mib, 20 * mib, false, 100 * mib), Ok(()));
        assert_eq!(
            check(dir, 30 * mib, 20 * mib, false, u64::MAX),
            Err(SpaceError::OverCap {
                size: 30 * mib,
                cap: 20 * mib
            })
        );
        // 10 MiB plain fits in 80 MiB with the 64 MiB reserve; encrypted (20 MiB) does not.
        assert_eq!(check(dir, 10 * mib, u64::MAX, false, 80 * mib), Ok(()));
        let err = check(dir, 10 * mib, u64::MAX, true, 80 * mib).unwrap_err();
        assert_eq!(
            err,
            SpaceError::NoRoom {
                dir: "/backups".into(),
                free: 80 * mib,
                needed: 20 * mib
            }
        );
        assert!(err.to_string().starts_with("/backups: 83886080 bytes free"));
        assert!(check(dir, u64::MAX, u64::MAX, true, u64::MAX).is_err());
    }

    #[test]
    fn free_bytes_reads_the_file_system() {
        let t = tempfile::tempdir().unwrap();
        assert!(free_bytes(t.path()).unwrap() > 0);
        assert!(free_bytes(&t.path().join("absent")).is_err());
    }
}
