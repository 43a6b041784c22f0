//! `ensure`'s fall-back to the object store (`--backup-remote`, switched on by
//! `--allow-remote-backup`): when no backup on this node is whole — the disk that held
//! them was replaced with the master, or they rotted — the newest whole backup in the
//! store (`latest`: the highest revision; `src/backup/fetch.rs`) is downloaded, every
//! file checked against its `backup.json`, and then judged exactly as a local one
//! (`health::find_backup`: opened whole with `--identity`, its revision compared with
//! the local data dir's by `decide`). A local backup that is there but cannot be opened
//! (encrypted, no identity) still stops the search: the store is for a node with no
//! backup, not a way around a key.
//!
//! The copy lives in a private dir under `--recovery-root` (`$TMPDIR` for a dry run)
//! until `ensure` ends; a killed run's copy is removed by the next run's tidy-up.

use super::Options;
use super::decide::Backup;
use crate::backup::fetch::{self, Fetched};
use crate::health;
use crate::start::progress::Progress;

/// The store `ensure` may restore from.
#[derive(Debug, Clone)]
pub struct RemoteBackups {
    /// The store's URL, as `backup --remote` was given it.
    pub url: String,
    /// Its `--remote-option` pairs.
    pub options: Vec<(String, String)>,
}

/// The backup a restore would use: the newest whole one on this node, else, with a
/// store, the newest whole one there, whose private copy `kept` holds until the run
/// ends. `Err` says why there is none.
pub async fn newest_backup(
    opts: &Options,
    kept: &mut Option<Fetched>,
    progress: &mut Progress,
) -> Result<Backup, String> {
    let local = health::find_backup(&opts.backup_dir, opts.identity.as_ref())?;
    if let Some(b) = local {
        return Ok(b);
    }
    let none = format!("no whole backup in {}", opts.backup_dir.display());
    let Some(remote) = &opts.remote_backups else {
        return Err(none);
    };
    if let Some(f) = kept.as_ref() {
        return judged(opts, f);
    }
    let base = if opts.dry_run {
        std::env::temp_dir()
    } else {
        crate::fsutil::private_dir(&opts.recovery_root).map_err(|e| e.to_string())?;
        opts.recovery_root.clone()
    };
    let url = format!("{}/{}", remote.url.trim_end_matches('/'), fetch::LATEST);
    let f = fetch::fetch(&url, &remote.options, &base)
        .await
        .map_err(|e| format!("{none}, and the store's newest: {e}"))?;
    progress.step(&format!(
        "{none}: downloaded {} (revision {}) from the store, checked against its backup.json",
        f.address, f.manifest.revision
    ));
    let b = judged(opts, &f);
    *kept = Some(f);
    b
}

/// The downloaded backup, judged as a local one, naming where it came from.
fn judged(opts: &Options, f: &Fetched) -> Result<Backup, String> {
    let found = health::find_backup(f.backup_dir(), opts.identity.as_ref())?;
    let mut b = found.ok_or_else(|| format!("{}: not whole once downloaded", f.address))?;
    b.from = Some(f.address.clone());
    Ok(b)
}
