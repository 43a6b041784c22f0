//! `kubeboot backup`: flags, the lock, and exit codes for [`crate::backup`]; `--list`
//! prints the backups and whether each is still whole.

use std::path::PathBuf;

use clap::Args;

use super::etcd_flags::EtcdFlags;
use super::{Exit, ExitWith, Failure, usage};
use crate::backup::{self, BackupError, catalog, retention::Policy};
use crate::encryption::EncryptionConfig;
use crate::source::SourceError;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub etcd: EtcdFlags,
    /// Where backups are kept, one directory each.
    #[arg(long, default_value = "/var/lib/kubeboot/backups", value_name = "DIR")]
    pub backup_dir: PathBuf,
    /// A host file or dir to keep with each backup (repeatable). The etcd TLS files
    /// and the encryption config are always kept.
    #[arg(long, value_name = "PATH")]
    pub pki_path: Vec<PathBuf>,
    /// The api-server's EncryptionConfiguration: verification decrypts Secrets with
    /// it, and it is kept with the backup.
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// Keep the newest N backups (at least 1).
    #[arg(long, default_value_t = Policy::default().keep_last, value_name = "N")]
    pub keep_last: usize,
    /// Keep the newest backup of each of the last N days that have one.
    #[arg(long, default_value_t = Policy::default().keep_daily, value_name = "N")]
    pub keep_daily: usize,
    /// Keep the newest backup of each of the last N ISO weeks that have one.
    #[arg(long, default_value_t = Policy::default().keep_weekly, value_name = "N")]
    pub keep_weekly: usize,
    /// Take no backup: list the backups in --backup-dir, newest (highest revision)
    /// first, checking each file against its sha256. Exits 1 when none is whole.
    #[arg(long)]
    pub list: bool,
    /// One backup at a time on a node.
    #[arg(long, default_value = "/run/kubeboot/backup.lock", value_name = "FILE")]
    pub lock_file: PathBuf,
}

pub fn run(args: BackupArgs) -> Result<(), Failure> {
    if args.list {
        return list(&args);
    }
    args.etcd.check()?;
    if args.etcd.etcd_servers.is_empty() {
        return Err(usage("--etcd-servers is required (or --list)"));
    }
    if args.keep_last == 0 {
        return Err(usage(
            "--keep-last must be at least 1: the newest backup is always kept",
        ));
    }
    let encryption = match &args.encryption_provider_config {
        Some(path) => Some(EncryptionConfig::from_file(path).exit_with(Exit::Usage)?),
        None => None,
    };
    let mut pki_paths: Vec<PathBuf> = args.etcd.tls_files().cloned().collect();
    pki_paths.extend(args.encryption_provider_config.iter().cloned());
    pki_paths.extend(args.pki_path.iter().cloned());
    let opts = backup::Options {
        etcd: args.etcd.config(),
        etcd_prefix: args.etcd.etcd_prefix.clone(),
        backup_dir: args.backup_dir.clone(),
        pki_paths,
        encryption,
        policy: Policy {
            keep_last: args.keep_last,
            keep_daily: args.keep_daily,
            keep_weekly: args.keep_weekly,
        },
        idle_timeout: args.etcd.etcd_request_timeout,
    };
    let _lock = super::take_lock(&args.lock_file, "backup")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(backup::run(&opts)).map_err(|e| {
        let code = match &e {
            BackupError::Source(SourceError::Config { .. }) | BackupError::Pki(_) => Exit::Usage,
            BackupError::Source(_) | BackupError::Take(backup::take::TakeError::Etcd { .. }) => {
                Exit::NoSource
            }
            _ => Exit::Failed,
        };
        Failure {
            code,
            error: e.into(),
        }
    })?;
    for (dir, reason) in &outcome.unreadable {
        tracing::warn!(dir = %dir.display(), "not a readable backup, left alone: {reason}");
    }
    let m = &outcome.manifest;
    println!(
        "backup {}: revision {}, {} keys, {:.1} MiB, restorable ({}); {} PKI file(s); retention removed {}",
        outcome.dir.display(),
        m.revision,
        m.keys,
        m.snapshot.size as f64 / (1024.0 * 1024.0),
        m.components.join(", "),
        m.pki.len(),
        outcome.pruned.len()
    );
    Ok(())
}

fn list(args: &BackupArgs) -> Result<(), Failure> {
    let found = catalog::scan(&args.backup_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.backup_dir.display()))?;
    let mut whole = 0;
    for f in &found {
        let state = match &f.manifest {
            Ok(m) => match catalog::verify(&f.dir, m) {
                Ok(()) => {
                    whole += 1;
                    format!(
                        "ok  {}  revision {}  {} keys  {} PKI file(s)",
                        m.taken_at,
                        m.revision,
                        m.keys,
                        m.pki.len()
                    )
                }
                Err(reason) => format!("DAMAGED  {reason}"),
            },
            Err(reason) => format!("UNREADABLE  {reason}"),
        };
        println!("{}  {state}", f.dir.display());
    }
    if whole == 0 {
        return Err(anyhow::anyhow!("{}: no whole backup", args.backup_dir.display()).into());
    }
    Ok(())
}
