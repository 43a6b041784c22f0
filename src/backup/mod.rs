//! `kubeboot backup`: one etcd snapshot and the PKI a restore needs, proven
//! restorable before it counts, then retention.
//!
//! "Verified" means more than a good checksum: the snapshot is read back with the
//! same reader and renderer `recover --etcd-backup-file` uses, so a backup that is
//! kept is one `recover` can turn into an asset dir (bootkube never tested its backup
//! path end to end, #596). A backup is built under a dot-name in the backup dir and
//! renamed into place whole; a run that fails or dies leaves no directory with a
//! backup's name, and the next run removes its leftovers.

pub mod catalog;
pub mod pki;
pub mod retention;
pub mod take;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

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
}

/// Takes one backup into `opts.backup_dir`, then applies retention. The caller holds
/// the backup lock.
pub async fn run(opts: &Options) -> Result<Outcome, BackupError> {
    fsutil::create_dir_all_with_mode(&opts.backup_dir, 0o700)?;
    remove_leftovers(&opts.backup_dir)?;
    let staging = opts.backup_dir.join(format!(
        "{}{}-{}",
        catalog::STAGING_PREFIX,
        fsutil::timestamp_suffix(),
        std::process::id()
    ));
    fsutil::create_dir_all_with_mode(&staging, 0o700)?;
    let built = build(opts, &staging).await;
    let (manifest, at) = match built {
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
        fs::remove_dir_all(&staging).map_err(FsError::io("remove", &staging))?;
        tracing::info!(dir = %dir.display(), revision = manifest.revision, "this revision is already backed up");
    } else {
        fs::rename(&staging, &dir).map_err(FsError::io("rename into place", &dir))?;
        fsutil::fsync_dir(&opts.backup_dir)?;
        tracing::info!(dir = %dir.display(), revision = manifest.revision, "backup written");
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
/// the snapshot, then the proof that it restores, then the manifest.
async fn build(opts: &Options, staging: &Path) -> Result<(Manifest, Timestamp), BackupError> {
    let pki = pki::copy_into(staging, &opts.pki_paths)?;
    let endpoint = opts.etcd.endpoints.join(",");
    let mut client = source::etcd::connect(&opts.etcd).await?;
    let taken_at = Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| Timestamp::now());
    let file = staging.join(catalog::SNAPSHOT);
    take::snapshot_to(&mut client, &endpoint, &file, opts.idle_timeout).await?;
    let mut manifest = verify_restorable(opts, &file, pki)?;
    manifest.taken_at = taken_at.to_string();
    manifest.etcd_endpoints = opts.etcd.endpoints.clone();
    let path = staging.join(catalog::MANIFEST);
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| FsError::io("serialize", &path)(e.into()))?;
    fsutil::write_atomic(&path, &json, 0o600)?;
    fsutil::fsync_dir(staging)?;
    Ok((manifest, taken_at))
}

/// Reads the snapshot back as `recover` would and renders its control plane in
/// memory. Returns the manifest without the time and endpoints.
fn verify_restorable(
    opts: &Options,
    file: &Path,
    pki: Vec<FileRecord>,
) -> Result<Manifest, BackupError> {
    let unverified = |reason: String| BackupError::Unverified {
        file: file.display().to_string(),
        reason,
    };
    let bytes = fs::read(file).map_err(FsError::io("read", file))?;
    let size = bytes.len() as u64;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let snap = Snapshot::from_bytes(
        &file.display().to_string(),
        bytes,
        &SnapshotOptions::default(),
    )
    .map_err(|e| unverified(e.to_string()))?;
    if snap.integrity() != Integrity::Verified {
        return Err(unverified(snap.integrity().describe().to_string()));
    }
    let (stored, info) =
        source::snapshot::objects(&snap, &file.display().to_string(), &opts.etcd_prefix);
    let cp = source::assemble(
        &opts.etcd_prefix,
        &stored,
        info,
        None,
        opts.encryption.as_ref(),
    )
    .map_err(|e| unverified(e.to_string()))?;
    let assets =
        render::render(&cp, &RenderOptions::default()).map_err(|e| unverified(e.to_string()))?;
    let components: Vec<String> = assets
        .files
        .keys()
        .filter_map(|p| p.strip_prefix("bootstrap-manifests/"))
        .map(str::to_string)
        .collect();
    if components.is_empty() {
        return Err(unverified(
            "no control-plane component to recover in it".into(),
        ));
    }
    Ok(Manifest {
        format: catalog::FORMAT,
        kubeboot_version: env!("CARGO_PKG_VERSION").to_string(),
        taken_at: String::new(),
        etcd_endpoints: Vec::new(),
        revision: snap.revision(),
        keys: snap.len(),
        snapshot: FileRecord {
            path: catalog::SNAPSHOT.to_string(),
            source: None,
            size,
            sha256,
        },
        self_hosted_etcd: render::has_self_hosted_etcd(&cp),
        components,
        pki,
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
    let found = catalog::scan(backup_dir).map_err(FsError::io("read", backup_dir))?;
    let mut entries = Vec::new();
    for f in &found {
        match (&f.manifest, catalog::parse_dir_name(&f.name)) {
            (Ok(_), Some((taken_at, revision))) => entries.push(retention::Entry {
                name: f.name.clone(),
                taken_at,
                revision,
            }),
            (Err(reason), _) => outcome.unreadable.push((f.dir.clone(), reason.clone())),
            (Ok(_), None) => {}
        }
    }
    let plan = retention::plan(&entries, policy);
    for name in plan.delete {
        let dir = backup_dir.join(&name);
        fs::remove_dir_all(&dir).map_err(FsError::io("remove", &dir))?;
        tracing::info!(dir = %dir.display(), "removed by retention");
        outcome.pruned.push(dir);
    }
    if !outcome.pruned.is_empty() {
        fsutil::fsync_dir(backup_dir)?;
    }
    Ok(())
}
