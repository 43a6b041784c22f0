//! `kubeboot backup`: one etcd snapshot and the PKI a restore needs, proven
//! restorable before it counts, then retention.
//!
//! "Verified" means more than a good checksum: the snapshot is read back with the
//! same reader and renderer `recover --etcd-backup-file` uses, so a backup that is
//! kept is one `recover` can turn into an asset dir (bootkube never tested its backup
//! path end to end, #596). A backup is built under a dot-name in the backup dir and
//! renamed into place whole; a run that fails or dies leaves no directory with a
//! backup's name, and the next run removes its leftovers.
//!
//! Before a byte is written the database's size is checked against `--max-size` and
//! the free space ([`space`]). With recipients the verified files are sealed into one
//! age archive ([`crypt`]) and the plain copies removed before the backup is renamed
//! into place: what is kept holds no plain secret. They were plain for that moment
//! only in the 0700 staging dir on the node whose etcd holds the same data unencrypted.

pub mod catalog;
pub mod crypt;
pub mod fetch;
pub mod inventory;
pub mod location;
pub mod metrics;
pub mod pki;
pub mod remote;
pub mod retention;
pub mod space;
mod store;
pub mod take;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use crate::encryption::EncryptionConfig;
use crate::fsutil::{self, FsError};
use crate::render::{self, RenderOptions};
use crate::snapshot::{Integrity, Options as SnapshotOptions, Snapshot};
use crate::source::{self, SourceError, etcd::EtcdConfig};
use catalog::{FileRecord, Manifest};

/// What one backup run needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub etcd: EtcdConfig,
    pub etcd_prefix: String,
    pub backup_dir: PathBuf,
    /// Host files and dirs copied into `pki/` (the etcd TLS files and the encryption
    /// config are added by the command layer).
    pub pki_paths: Vec<PathBuf>,
    /// Decrypts Secrets during verification.
    pub encryption: Option<EncryptionConfig>,
    pub policy: retention::Policy,
    /// Bounds the wait for each chunk of the snapshot stream.
    pub idle_timeout: Duration,
    /// Encrypt to these age recipients; empty: a plain backup.
    pub recipients: Vec<age::x25519::Recipient>,
    /// The largest snapshot kept, in bytes (`--max-size`).
    pub max_size: u64,
    /// The check that the snapshot restores maps the file, and a page of it lost
    /// meanwhile ends the process with this code ([`SnapshotOptions::map_or_exit`]);
    /// `None` reads it into memory.
    pub map_or_exit: Option<i32>,
}

/// What a run did.
#[derive(Debug)]
pub struct Outcome {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Older backups retention removed.
    pub pruned: Vec<PathBuf>,
    /// Backups whose manifest could not be read: left alone, reported.
    pub unreadable: Vec<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// etcd could not be read (exit 3).
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Take(#[from] take::TakeError),
    /// A PKI path or the encryption config cannot be used (exit 2).
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The snapshot was taken but is not restorable: nothing is kept (exit 1).
    #[error("{file}: not restorable, discarded: {reason}")]
    Unverified { file: String, reason: String },
    #[error(transparent)]
    Fs(#[from] FsError),
    /// Over `--max-size`, or no room on the disk: nothing written (exit 1).
    #[error(transparent)]
    Space(#[from] space::SpaceError),
    /// Sealing the archive failed (exit 1; a bad recipient is refused before this).
    #[error(transparent)]
    Crypt(#[from] crypt::CryptError),
}

impl BackupError {
    /// Whether the snapshot was taken but proved not restorable (a metric of its own).
    pub fn is_verification(&self) -> bool {
        matches!(self, BackupError::Unverified { .. })
    }
}

/// Takes one backup into `opts.backup_dir`, then applies retention. The caller holds
/// the backup lock.
pub async fn run(opts: &Options) -> Result<Outcome, BackupError> {
    // Checked when it exists: a drifted mode is set back to 0700, a symlink or another
    // user's dir is refused (the backups hold every Secret of the cluster).
    fsutil::private_dir(&opts.backup_dir)?;
    remove_leftovers(&opts.backup_dir)?;
    let staging = opts.backup_dir.join(format!(
        "{}{}-{}",
        catalog::STAGING_PREFIX,
        fsutil::timestamp_suffix(),
        std::process::id()
    ));
    fsutil::create_dir_all_with_mode(&staging, 0o700)?;
    let built = build(opts, &staging).await;
    let (mut manifest, at) = match built {
        Ok(built) => built,
        Err(e) => {
            // Our own half-built dir, never anyone's only copy: etcd is alive.
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let dir = opts
        .backup_dir
        .join(catalog::dir_name(at, manifest.revision));
    if dir.exists() {
        // Same second, same revision: the same data is already kept (a timer and a
        // hand-run backup racing). The new copy adds nothing.
        // The outcome describes what is kept: the existing backup's manifest (an
        // encrypted copy's archive differs from the one just sealed, byte for byte).
        fs::remove_dir_all(&staging).map_err(FsError::io("remove", &staging))?;
        tracing::info!(dir = %dir.display(), revision = manifest.revision, outcome = "kept", "this revision is already backed up");
        match catalog::read_manifest(&dir) {
            Ok(kept) => manifest = kept,
            Err(why) => {
                tracing::warn!(dir = %dir.display(), "the backup already there does not read: {why}")
            }
        }
    } else {
        fs::rename(&staging, &dir).map_err(FsError::io("rename into place", &dir))?;
        fsutil::fsync_dir(&opts.backup_dir)?;
        tracing::info!(dir = %dir.display(), revision = manifest.revision, outcome = "written", "backup written");
    }
    let mut outcome = Outcome {
        dir,
        manifest,
        pruned: Vec::new(),
        unreadable: Vec::new(),
    };
    prune(&opts.backup_dir, &opts.policy, &mut outcome)?;
    Ok(outcome)
}

/// PKI first (a wrong path is the operator's to fix, before etcd is bothered), then
/// the room for it, the snapshot, the proof that it restores, the manifest, and with
/// recipients the archive that replaces them all.
async fn build(opts: &Options, staging: &Path) -> Result<(Manifest, Timestamp), BackupError> {
    let pki = pki::copy_into(staging, &opts.pki_paths)?;
    let endpoint = opts.etcd.endpoints.join(",");
    let mut client = source::etcd::connect(&opts.etcd).await?;
    let db_size = take::db_size(&mut client, &endpoint, opts.idle_timeout).await?;
    let free =
        space::free_bytes(&opts.backup_dir).map_err(FsError::io("statvfs", &opts.backup_dir))?;
    space::check(
        &opts.backup_dir,
        db_size,
        opts.max_size,
        !opts.recipients.is_empty(),
        free,
    )?;
    let taken_at = Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| Timestamp::now());
    let file = staging.join(catalog::SNAPSHOT);
    let taken = take::snapshot_to(
        &mut client,
        &endpoint,
        &file,
        opts.idle_timeout,
        opts.max_size,
    )
    .await?;
    let mut manifest = verify_restorable(opts, &file, taken, pki)?;
    manifest.taken_at = taken_at.to_string();
    manifest.etcd_endpoints = opts.etcd.endpoints.clone();
    write_manifest(staging, &manifest)?;
    if !opts.recipients.is_empty() {
        manifest = seal(staging, manifest, &opts.recipients)?;
        write_manifest(staging, &manifest)?;
    }
    fsutil::fsync_dir(staging)?;
    Ok((manifest, taken_at))
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), FsError> {
    let path = dir.join(catalog::MANIFEST);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| FsError::io("serialize", &path)(e.into()))?;
    fsutil::write_atomic(&path, &json, 0o600)
}

/// Seals the plain backup in `staging` (its `backup.json` first, so a bare `tar x`
/// gives the whole plain backup back) into the archive, removes the plain files, and
/// returns the outer manifest: the same records, and the archive's.
pub(crate) fn seal(
    staging: &Path,
    manifest: Manifest,
    recipients: &[age::x25519::Recipient],
) -> Result<Manifest, BackupError> {
    let mut members = vec![
        catalog::MANIFEST.to_string(),
        manifest.snapshot.path.clone(),
    ];
    members.extend(manifest.pki.iter().map(|r| r.path.clone()));
    let archive = staging.join(crypt::ARCHIVE);
    let (size, sha256) = crypt::seal(staging, &members, recipients, &archive)?;
    for member in &members {
        let path = staging.join(member);
        fs::remove_file(&path).map_err(FsError::io("remove", &path))?;
    }
    let pki_dir = staging.join(catalog::PKI_DIR);
    if pki_dir.exists() {
        fs::remove_dir_all(&pki_dir).map_err(FsError::io("remove", &pki_dir))?;
    }
    Ok(Manifest {
        archive: Some(catalog::ArchiveRecord {
            path: crypt::ARCHIVE.to_string(),
            size,
            sha256,
            encryption: "age".to_string(),
            recipients: recipients.iter().map(ToString::to_string).collect(),
        }),
        ..manifest
    })
}

/// What a restorable snapshot holds, as its check found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restorable {
    pub revision: i64,
    pub keys: usize,
    pub components: Vec<String>,
    pub self_hosted_etcd: bool,
}

/// Reads snapshot `bytes` (named `name` in errors) as `recover` would and renders its
/// control plane in memory; the error says why it would not restore.
pub fn restorable(
    name: &str,
    bytes: Vec<u8>,
    etcd_prefix: &str,
    encryption: Option<&EncryptionConfig>,
) -> Result<Restorable, String> {
    let snap = Snapshot::from_bytes(name, bytes, &SnapshotOptions::default())
        .map_err(|e| e.to_string())?;
    restorable_snapshot(name, &snap, etcd_prefix, encryption)
}

fn restorable_snapshot(
    name: &str,
    snap: &Snapshot,
    etcd_prefix: &str,
    encryption: Option<&EncryptionConfig>,
) -> Result<Restorable, String> {
    if snap.integrity() != Integrity::Verified {
        return Err(snap.integrity().describe().to_string());
    }
    let (stored, info) =
        source::snapshot::objects(snap, name, etcd_prefix).map_err(|e| e.to_string())?;
    let cp = source::assemble(etcd_prefix, &stored, info, None, encryption)
        .map_err(|e| e.to_string())?;
    let assets = render::render(&cp, &RenderOptions::default()).map_err(|e| e.to_string())?;
    let components: Vec<String> = assets
        .files
        .keys()
        .filter_map(|p| p.strip_prefix("bootstrap-manifests/"))
        .map(str::to_string)
        .collect();
    if components.is_empty() {
        return Err("no control-plane component to recover in it".into());
    }
    Ok(Restorable {
        revision: snap.revision(),
        keys: snap.len(),
        components,
        self_hosted_etcd: render::has_self_hosted_etcd(&cp),
    })
}

/// The restorable check of the snapshot just taken (its trailer was checked as it
/// streamed in). Returns the manifest without the time and endpoints.
fn verify_restorable(
    opts: &Options,
    file: &Path,
    taken: take::Taken,
    pki: Vec<FileRecord>,
) -> Result<Manifest, BackupError> {
    let name = file.display().to_string();
    let size = taken.len;
    let sha256 = hex::encode(taken.hashes.file_sha256);
    let sync = taken.sync;
    let unverified = |reason: String| BackupError::Unverified {
        file: name.clone(),
        reason,
    };
    let checked = taken
        .hashes
        .trailer
        .map_err(|problem| unverified(problem.to_string()))?;
    let read = SnapshotOptions {
        map_or_exit: opts.map_or_exit,
        ..SnapshotOptions::default()
    };
    let snap =
        Snapshot::open_streamed(file, &read, checked).map_err(|e| unverified(e.to_string()))?;
    let r = restorable_snapshot(&name, &snap, &opts.etcd_prefix, opts.encryption.as_ref())
        .map_err(unverified)?;
    sync.wait()?;
    Ok(Manifest {
        format: catalog::FORMAT,
        kubeboot_version: env!("CARGO_PKG_VERSION").to_string(),
        taken_at: String::new(),
        etcd_endpoints: Vec::new(),
        revision: r.revision,
        keys: r.keys,
        snapshot: FileRecord {
            path: catalog::SNAPSHOT.to_string(),
            source: None,
            size,
            sha256,
        },
        self_hosted_etcd: r.self_hosted_etcd,
        components: r.components,
        pki,
        archive: None,
    })
}

/// Removes staging dirs of runs that died. Safe because the caller holds the lock:
/// no other run is writing one.
fn remove_leftovers(backup_dir: &Path) -> Result<(), FsError> {
    let entries = fs::read_dir(backup_dir).map_err(FsError::io("read", backup_dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(catalog::STAGING_PREFIX) {
            tracing::info!(dir = %entry.path().display(), "removing a backup left incomplete by an earlier run");
            fs::remove_dir_all(entry.path()).map_err(FsError::io("remove", &entry.path()))?;
        }
    }
    Ok(())
}

/// Applies the retention policy to the backups whose manifest reads, and notes in
/// `outcome` what it removed and what it could not read.
fn prune(
    backup_dir: &Path,
    policy: &retention::Policy,
    outcome: &mut Outcome,
) -> Result<(), FsError> {
    let (plan, unreadable) = prune_plan(backup_dir, policy)?;
    outcome.unreadable = unreadable;
    outcome.pruned = apply_prune(backup_dir, &plan)?;
    Ok(())
}

/// Retention's decision for the backups in `backup_dir` (those whose manifest reads),
/// and the backups it leaves alone because their manifest does not read.
pub fn prune_plan(
    backup_dir: &Path,
    policy: &retention::Policy,
) -> Result<(retention::Plan, Vec<(PathBuf, String)>), FsError> {
    let found = catalog::scan(backup_dir).map_err(FsError::io("read", backup_dir))?;
    let mut entries = Vec::new();
    let mut unreadable = Vec::new();
    for f in &found {
        match (&f.manifest, catalog::parse_dir_name(&f.name)) {
            (Ok(_), Some((taken_at, revision))) => entries.push(retention::Entry {
                name: f.name.clone(),
                taken_at,
                revision,
            }),
            (Err(reason), _) => unreadable.push((f.dir.clone(), reason.clone())),
            (Ok(_), None) => {}
        }
    }
    Ok((retention::plan(&entries, policy), unreadable))
}

/// Removes what `plan` deletes; returns the removed dirs.
pub fn apply_prune(backup_dir: &Path, plan: &retention::Plan) -> Result<Vec<PathBuf>, FsError> {
    let mut pruned = Vec::new();
    for name in &plan.delete {
        let dir = backup_dir.join(name);
        fs::remove_dir_all(&dir).map_err(FsError::io("remove", &dir))?;
        tracing::info!(dir = %dir.display(), "removed by retention");
        pruned.push(dir);
    }
    if !pruned.is_empty() {
        fsutil::fsync_dir(backup_dir)?;
    }
    Ok(pruned)
}
