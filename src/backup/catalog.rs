//! The backup dir on disk: how a backup is named, what its `backup.json` says, and
//! which backups are there and whole. `ensure` and `backup --list` read it; `backup`
//! writes it.
//!
//! A backup is one directory, `<UTC time>-r<revision>` (e.g. `20261126T023000Z-r4711`),
//! so `ls` sorts it by age and names the etcd revision an operator restores to. It is
//! built under a dot-name and renamed into place whole, so a directory with a
//! backup's name is complete, and the manifest's sizes and sha256 sums tell whether
//! it has been damaged since.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest's name inside a backup.
pub const MANIFEST: &str = "backup.json";
/// The etcd snapshot's name inside a backup (with etcd's sha256 trailer).
pub const SNAPSHOT: &str = "snapshot.db";
/// Where the PKI files go inside a backup, under their absolute host path.
pub const PKI_DIR: &str = "pki";
/// Prefix of a backup still being written (or left by a run that died).
pub const STAGING_PREFIX: &str = ".incomplete-";
/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;

/// What `backup.json` records. Everything `ensure` needs to choose a backup without
/// opening the snapshot, and everything needed to check it is still whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kubeboot_version: String,
    /// RFC 3339, UTC.
    pub taken_at: String,
    pub etcd_endpoints: Vec<String>,
    /// The etcd store revision the snapshot holds.
    pub revision: i64,
    /// Live keys in the snapshot.
    pub keys: usize,
    pub snapshot: FileRecord,
    /// The control-plane components a recovery from this backup renders
    /// (bootstrap-manifests/ file names).
    pub components: Vec<String>,
    pub self_hosted_etcd: bool,
    /// Host files copied into `pki/`: what a restore needs besides the snapshot
    /// (etcd's client TLS, the encryption config), bootkube #612.
    pub pki: Vec<FileRecord>,
    /// Set when the backup is encrypted: then `snapshot` and `pki` name members of this
    /// archive, not files in the backup dir (src/backup/crypt.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveRecord>,
}

/// The encrypted archive of a backup: its file, size and sha256 (of the ciphertext,
/// checkable without a key), and who can open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveRecord {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// `age`: the only one there is.
    pub encryption: String,
    /// The age recipients (public keys) it is encrypted to.
    pub recipients: Vec<String>,
}

impl Manifest {
    /// The file a snapshot reader opens: the age archive of an encrypted backup, else
    /// the snapshot.
    pub fn data_file(&self) -> &str {
        self.archive
            .as_ref()
            .map_or(&self.snapshot.path, |a| &a.path)
    }

    /// Bytes the backup keeps on disk (its archive, or its snapshot and PKI files).
    pub fn size_on_disk(&self) -> u64 {
        match &self.archive {
            Some(a) => a.size,
            None => std::iter::once(&self.snapshot)
                .chain(&self.pki)
                .map(|r| r.size)
                .sum(),
        }
    }
}

/// One file of a backup: its path inside the backup, where it came from, its size and
/// sha256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// A backup found in the backup dir.
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub name: String,
    /// The manifest, or why it could not be read.
    pub manifest: Result<Manifest, String>,
}

/// The directory name of a backup taken at `at` holding `revision`.
pub fn dir_name(at: Timestamp, revision: i64) -> String {
    format!("{}-r{revision}", at.strftime("%Y%m%dT%H%M%SZ"))
}

/// Whether a file name from a manifest stays inside the backup's dir (relative, no
/// `..`): a manifest read from an object store is not trusted to name other files.
pub fn safe_relative(path: &str) -> bool {
    let p = std::path::Path::new(path);
    !path.is_empty()
        && p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Parses [`dir_name`]'s format; `None` for anything else (an operator's own files in
/// the backup dir are never touched).
pub fn parse_dir_name(name: &str) -> Option<(Timestamp, i64)> {
    let (time, rev) = name.split_once("-r")?;
    let revision = rev.parse::<i64>().ok().filter(|r| *r >= 0)?;
    if !rev.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", time)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some((at, revision))
}

/// Every backup in `dir`, newest first: highest etcd revision first, the time in the
/// name breaking ties. The revision, not the clock, says which past is newest: a node
/// whose clock was reset (to 2000, or an hour back) names a backup wrongly, but the
/// revision etcd gave it is still its place in the cluster's history. A missing dir
/// is an empty list.
pub fn scan(dir: &Path) -> io::Result<Vec<Found>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if parse_dir_name(&name).is_none() || !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        let manifest = read_manifest(&path);
        found.push(Found {
            dir: path,
            name,
            manifest,
        });
    }
    found.sort_by(|a, b| newest_first(&a.name, &b.name));
    Ok(found)
}

/// Orders two backup names newest first: by revision, then time, then name (so the
/// order is total and the same on every run).
pub fn newest_first(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |n: &str| parse_dir_name(n).map(|(at, rev)| (rev, at));
    key(b).cmp(&key(a)).then_with(|| b.cmp(a))
}

/// Reads and checks `<dir>/backup.json`; the error is one line.
pub fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if m.format != FORMAT {
        return Err(format!(
            "{}: format {} is not {FORMAT} (written by kubeboot {})",
            path.display(),
            m.format,
            m.kubeboot_version
        ));
    }
    Ok(m)
}

/// Checks every file the manifest lists against its size and sha256: a backup that
/// rotted on disk is found before a restore trusts it. `Ok` means `dir/<snapshot.path>`
/// is a whole snapshot a restore can read as it is, so an encrypted backup is an `Err`
/// here (`ensure` passes over it until it is given an identity); `backup list` and
/// `backup verify` check those through [`super::inventory`].
pub fn verify(dir: &Path, manifest: &Manifest) -> Result<(), String> {
    if let Some(archive) = &manifest.archive {
        return Err(format!(
            "{}: encrypted with {}; it needs an identity to be read",
            dir.join(&archive.path).display(),
            archive.encryption
        ));
    }
    for record in std::iter::once(&manifest.snapshot).chain(&manifest.pki) {
        check_file(&dir.join(&record.path), record.size, &record.sha256)?;
    }
    Ok(())
}

/// `path` has `size` bytes hashing to `sha256`; the error says which differs.
pub fn check_file(path: &Path, size: u64, sha256: &str) -> Result<(), String> {
    let (got_size, got_sha) = hash_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    check_record(
        &path.display().to_string(),
        got_size,
        &got_sha,
        size,
        sha256,
    )
}

/// Compares what was read of `name` with what the manifest says.
pub fn check_record(
    name: &str,
    got_size: u64,
    got_sha: &str,
    size: u64,
    sha256: &str,
) -> Result<(), String> {
    if got_size != size {
        return Err(format!(
            "{name}: {got_size} bytes, the manifest says {size}"
        ));
    }
    if got_sha != sha256 {
        return Err(format!(
            "{name}: sha256 {got_sha}, the manifest says {sha256}"
        ));
    }
    Ok(())
}

/// Size and hex sha256 of a file, read in chunks (snapshots can be gigabytes).
pub fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_by_time() {
        let at: Timestamp = "2026-11-26T02:30:00Z".parse().unwrap();
        let name = dir_name(at, 4711);
        assert_eq!(name, "20261126T023000Z-r4711");
        assert_eq!(parse_dir_name(&name), Some((at, 4711)));
        let later = dir_name("2026-11-26T10:00:00Z".parse().unwrap(), 9);
        assert!(later > name, "a later backup sorts after an earlier one");
    }

    #[test]
    fn scan_orders_by_revision_not_by_a_wrong_clock() {
        let t = tempfile::tempdir().unwrap();
        // r100 is the oldest past but dated latest; r950 was taken with the clock at 2000.
        for name in [
            "20261201T000000Z-r100",
            "20200101T000000Z-r900",
            "20000101T000000Z-r950",
            "20000101T000100Z-r950",
        ] {
            fs::create_dir(t.path().join(name)).unwrap();
        }
        let found = scan(t.path()).unwrap();
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "20000101T000100Z-r950",
                "20000101T000000Z-r950",
                "20200101T000000Z-r900",
                "20261201T000000Z-r100"
            ]
        );
    }

    #[test]
    fn foreign_names_are_not_backups() {
        for name in [
            "notes.txt",
            ".incomplete-20261126T023000Z-1",
            "20261126T023000Z",
            "20261126T023000Z-r",
            "20261126T023000Z-r-1",
            "20261126T023000Z-r1x",
            "2026-11-26-r1",
        ] {
            assert_eq!(parse_dir_name(name), None, "{name}");
        }
    }

    fn sample(dir: &Path) -> Manifest {
        fs::write(dir.join(SNAPSHOT), b"snapshot bytes").unwrap();
        let (size, sha256) = hash_file(&dir.join(SNAPSHOT)).unwrap();
        Manifest {
            format: FORMAT,
            kubeboot_version: "test".into(),
            taken_at: "2026-11-26T02:30:00Z".into(),
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            revision: 7,
            keys: 3,
            snapshot: FileRecord {
                path: SNAPSHOT.into(),
                source: None,
                size,
                sha256,
            },
            components: vec!["bootstrap-kube-apiserver.yaml".into()],
            self_hosted_etcd: false,
            pki: vec![],
            archive: None,
        }
    }

    #[test]
    fn verify_finds_a_changed_snapshot() {
        let t = tempfile::tempdir().unwrap();
        let m = sample(t.path());
        verify(t.path(), &m).unwrap();
        fs::write(t.path().join(SNAPSHOT), b"snapshot bytez").unwrap();
        let err = verify(t.path(), &m).unwrap_err();
        assert!(err.contains("snapshot.db: sha256"), "{err}");
        fs::write(t.path().join(SNAPSHOT), b"short").unwrap();
        let err = verify(t.path(), &m).unwrap_err();
        assert!(err.contains("5 bytes, the manifest says 14"), "{err}");
    }

    #[test]
    fn scan_lists_newest_first_and_reports_bad_manifests() {
        let t = tempfile::tempdir().unwrap();
        for name in ["20261125T000000Z-r5", "20261126T000000Z-r9", "keep-me"] {
            fs::create_dir(t.path().join(name)).unwrap();
        }
        let m = sample(&t.path().join("20261126T000000Z-r9"));
        fs::write(
            t.path().join("20261126T000000Z-r9").join(MANIFEST),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        let found = scan(t.path()).unwrap();
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["20261126T000000Z-r9", "20261125T000000Z-r5"]);
        assert_eq!(found[0].manifest.as_ref().unwrap(), &m);
        let err = found[1].manifest.as_ref().unwrap_err();
        assert!(err.contains("20261125T000000Z-r5/backup.json"), "{err}");
        assert!(scan(&t.path().join("absent")).unwrap().is_empty());
    }
}
