//! `kubeboot backup`: flags, the lock, metrics and exit codes for [`crate::backup`].
//! With no subcommand it takes a backup (the timer unit calls it so); `list`, `verify`
//! and `prune` read and tidy the backup dir ([`super::backup_report`]).
//!
//! The backup's own flags stay on `backup`, so `config.toml`'s `[backup]` table (put
//! before the subcommand's name by the config layer) reaches every subcommand; the
//! subcommands repeat the few flags an operator types after them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::etcd_flags::EtcdFlags;
use super::{Exit, ExitWith, Failure, Format, parse_duration, usage};
use crate::backup::crypt::{self, CryptError, Identity};
use crate::backup::remote::{Remote, RemoteBackup};
use crate::backup::{self, BackupError, fetch, metrics, retention::Policy, space};
use crate::encryption::EncryptionConfig;
use crate::source::SourceError;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub etcd: EtcdFlags,
    /// Where backups are kept, one directory each.
    #[arg(long, default_value = "/var/lib/kubeboot/backups", value_name = "DIR")]
    pub backup_dir: PathBuf,
    #[command(flatten)]
    pub output: super::OutputFlag,
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
    /// Encrypt the backup (snapshot and PKI, one age archive) to this age public key
    /// (age1…; repeatable). Without any recipient the backup is plain.
    #[arg(long, value_name = "AGE_PUBKEY")]
    pub recipient: Vec<String>,
    /// A file of age recipients, one a line, `#` comments (repeatable).
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,
    /// An age identity file: `list` and `verify` open encrypted backups with it; a
    /// backup run proves its new archive opens with it.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Write Prometheus metrics here after every run, for node_exporter's textfile
    /// collector (replaced atomically; counters carried over from the previous file).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Also keep each backup in this object store, off the node: s3://BUCKET/PREFIX,
    /// gs://BUCKET/PREFIX, az://CONTAINER/PREFIX (credentials from the AWS_*, GOOGLE_*
    /// or AZURE_* variables or instance metadata, or --remote-option) or file:///DIR.
    /// An upload that fails is a warning, counted in the metrics; the local copy is
    /// kept either way. Retention applies there too.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// An object store option, KEY=VALUE (repeatable): aws_endpoint, aws_region,
    /// google_service_account, azure_storage_account_name, … (object_store's names, of
    /// the URL's store). Keep secrets in the environment: a command line is visible to
    /// every user of the node.
    #[arg(long, value_name = "KEY=VALUE")]
    pub remote_option: Vec<String>,
    /// Upload plain backups, whose PKI holds private keys, with no --recipient.
    #[arg(long)]
    pub allow_plaintext_upload: bool,
    /// Refuse (nothing written) a snapshot larger than this: bytes or KiB, MiB, GiB, TiB.
    #[arg(long, default_value = "8GiB", value_parser = space::parse_size, value_name = "SIZE")]
    pub max_size: u64,
    /// Old form of `kubeboot backup list` (same output; exits 1 when no backup is whole).
    #[arg(long)]
    pub list: bool,
    /// One backup at a time on a node.
    #[arg(long, default_value = "/run/kubeboot/backup.lock", value_name = "FILE")]
    pub lock_file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// List the backups, newest (highest revision) first, each checked again
    List(ListArgs),
    /// Check one backup byte for byte and prove it restores (as recover would read it)
    Verify(VerifyArgs),
    /// Apply the retention policy now (--dry-run: only say what it would remove)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: text (default) or json (docs/cli.md).
    #[arg(short, long, visible_short_alias = 'w', value_enum, default_value_t = ListFormat::Text)]
    pub output: ListFormat,
    /// Exit 8 when the newest backup is damaged, or the newest whole (or intact
    /// encrypted) one is older than this (e.g. 2h), or there is none.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub max_age: Option<Duration>,
    /// Overrides `backup --backup-dir`.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Open encrypted backups with this age identity file (else they are listed as
    /// encrypted-unverified once their ciphertext matches).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A backup's ID (its directory name in --backup-dir), a backup dir, a file in
    /// one, or a lone snapshot or age archive; or a backup in object storage, by URL:
    /// s3://bucket/prefix/NAME, or …/latest for the newest whole one.
    #[arg(value_name = "ID|FILE|URL")]
    pub target: String,
    /// Overrides `backup --backup-dir`.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// The age identity file an encrypted backup is opened with.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub remote: super::remote_read::RemoteRead,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Print what would be kept and removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Overrides `backup --backup-dir`.
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Overrides `backup --keep-last`.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Overrides `backup --keep-daily`.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<usize>,
    /// Overrides `backup --keep-weekly`.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<usize>,
}

pub fn run(args: BackupArgs) -> Result<(), Failure> {
    match &args.action {
        Some(Action::List(list)) => return super::backup_report::list(&args, list),
        Some(Action::Verify(verify)) => return super::backup_report::verify(&args, verify),
        Some(Action::Prune(prune)) => return super::backup_report::prune(&args, prune),
        None if args.list => return super::backup_report::old_list(&args),
        None => {}
    }
    args.etcd.check()?;
    if args.etcd.etcd_servers.is_empty() {
        return Err(usage(
            "--etcd-servers is required (or a subcommand: list, verify, prune)",
        ));
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
    let recipients =
        crypt::recipients(&args.recipient, &args.recipients_file).exit_with(Exit::Usage)?;
    let identity = load_identity(args.identity.as_ref())?;
    let remote = open_remote(&args, !recipients.is_empty())?;
    let mut pki_paths: Vec<PathBuf> = args.etcd.tls_files().cloned().collect();
    pki_paths.extend(args.encryption_provider_config.iter().cloned());
    pki_paths.extend(args.pki_path.iter().cloned());
    let opts = backup::Options {
        etcd: args.etcd.config(),
        etcd_prefix: args.etcd.etcd_prefix.clone(),
        backup_dir: args.backup_dir.clone(),
        pki_paths,
        encryption,
        policy: policy(&args),
        idle_timeout: args.etcd.etcd_request_timeout,
        recipients,
        max_size: args.max_size,
        // One run that exits: the snapshot it just wrote is mapped, not copied.
        map_or_exit: Some(Exit::Failed as i32),
    };
    let _lock = super::take_lock(&args.lock_file, "backup")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let result = runtime.block_on(backup::run(&opts)).and_then(|outcome| {
        prove_it_opens(&outcome, identity.as_ref())?;
        Ok(outcome)
    });
    let duration = started.elapsed().as_secs_f64();
    let uploaded = match (&result, &remote) {
        (Ok(o), Some(r)) => Some(runtime.block_on(upload(r, o, &opts.policy, &args))),
        _ => None,
    };
    let run = match &result {
        Ok(o) => metrics::Run::Success {
            size: o.manifest.size_on_disk(),
            revision: o.manifest.revision,
            duration,
            uploaded,
        },
        Err(e) => metrics::Run::Failure {
            verification: e.is_verification(),
        },
    };
    let metrics_written = match &args.metrics_file {
        Some(path) => {
            let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
            metrics::write(path, run, now).map(|_| ())
        }
        None => Ok(()),
    };
    let outcome = result.map_err(|e| Failure {
        code: exit_code(&e),
        error: e.into(),
    })?;
    for (dir, reason) in &outcome.unreadable {
        tracing::warn!(dir = %dir.display(), "not a readable backup, left alone: {reason}");
    }
    let m = &outcome.manifest;
    let sealed = match &m.archive {
        Some(a) => format!(", encrypted to {} age recipient(s)", a.recipients.len()),
        None => String::new(),
    };
    let line = format!(
        "backup {}: revision {}, {} keys, {:.1} MiB, restorable ({}); {} PKI file(s){sealed}; retention removed {}",
        outcome.dir.display(),
        m.revision,
        m.keys,
        m.size_on_disk() as f64 / (1024.0 * 1024.0),
        m.components.join(", "),
        m.pki.len(),
        outcome.pruned.len()
    );
    let report = TakenReport {
        dir: outcome.dir.display().to_string(),
        revision: m.revision,
        keys: m.keys,
        size: m.size_on_disk(),
        components: &m.components,
        pki_files: m.pki.len(),
        encrypted_recipients: m.archive.as_ref().map(|a| a.recipients.len()),
        pruned: outcome
            .pruned
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    };
    args.output.emit(&[line], &report)?;
    // The backup is kept either way; a monitor reading stale metrics must still learn.
    metrics_written.map_err(|e| {
        anyhow::anyhow!("the backup was kept, but the metrics were not written: {e}")
    })?;
    Ok(())
}

/// What `backup -o json|yaml` prints after a backup (docs/cli.md).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TakenReport<'a> {
    dir: String,
    revision: i64,
    keys: usize,
    /// Bytes on disk: the snapshot, or the archive of an encrypted backup.
    size: u64,
    components: &'a [String],
    pki_files: usize,
    /// How many age recipients the archive is sealed to; absent for a plain backup.
    encrypted_recipients: Option<usize>,
    /// The backups retention removed.
    pruned: Vec<String>,
}

/// The object store of `--remote`, refused (exit 2) when a plain backup would leave the
/// node or the URL or an option does not work.
fn open_remote(args: &BackupArgs, encrypted: bool) -> Result<Option<Remote>, Failure> {
    let Some(url) = &args.remote else {
        return Ok(None);
    };
    if !encrypted && !args.allow_plaintext_upload {
        return Err(usage(format!(
            "--remote {url}: a plain backup holds private keys (the etcd client key, the encryption config); encrypt it before it leaves the node (--recipient, --recipients-file) or pass --allow-plaintext-upload"
        )));
    }
    open_store(url, &args.remote_option).map(Some)
}

/// The store at `url` with its `--remote-option` flags; exit 2 when either is unusable.
pub(super) fn open_store(url: &str, flags: &[String]) -> Result<Remote, Failure> {
    let options = fetch::parse_options(flags).map_err(usage)?;
    Remote::open(url, &options).map_err(usage)
}

/// Copies the kept backup to the store and applies retention there; whether it worked.
/// A failure is a warning: the local copy is what was promised first. The store is
/// listed once: the upload, the resumes and retention all work from that listing.
async fn upload(r: &Remote, o: &backup::Outcome, policy: &Policy, args: &BackupArgs) -> bool {
    let name = o
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let done = async {
        let mut listed = r.list().await?;
        let sent = r.upload(&o.dir, &name, &o.manifest, &listed).await?;
        sent_whole(&mut listed, &name);
        let resumed = resume(
            r,
            &args.backup_dir,
            args.allow_plaintext_upload,
            policy,
            &listed,
        )
        .await?;
        for earlier in &resumed {
            sent_whole(&mut listed, earlier);
        }
        let pruned = r.prune(policy, &listed).await?;
        Ok::<_, String>((sent, resumed, pruned))
    };
    match done.await {
        Ok((sent, resumed, pruned)) => {
            for earlier in &resumed {
                tracing::info!(remote = %r.address(earlier, ""), "an earlier backup whose copy never finished was copied off the node");
            }
            tracing::info!(remote = %r.address(&name, ""), files = sent, resumed = resumed.len(), pruned = pruned.len(), "backup copied off the node");
            true
        }
        Err(e) => {
            // One line in the journal: a store's error body (Azure's XML) has newlines.
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            tracing::warn!(
                "the backup is kept on this node but was not copied to {}: {e}",
                r.url
            );
            false
        }
    }
}

/// Notes in this run's listing that backup `name` is now whole in the store.
fn sent_whole(listed: &mut Vec<RemoteBackup>, name: &str) {
    match listed.iter_mut().find(|b| b.name == name) {
        Some(b) => b.whole = true,
        None => listed.push(RemoteBackup::named(name, true)),
    }
}

/// Sends the earlier backups kept here whose copy never finished (a failed or killed
/// upload; [`crate::backup::remote::to_resume`]), each checked whole here first (only
/// those: hashing every kept backup on every run would cost more than the upload);
/// returns their names.
async fn resume(
    r: &Remote,
    dir: &std::path::Path,
    plaintext_ok: bool,
    policy: &Policy,
    listed: &[RemoteBackup],
) -> Result<Vec<String>, String> {
    let found = backup::catalog::scan(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kept: Vec<_> = found
        .iter()
        .filter_map(|f| {
            let m = f.manifest.as_ref().ok()?;
            Some(backup::remote::Kept {
                name: f.name.clone(),
                encrypted: m.archive.is_some(),
            })
        })
        .collect();
    let names = backup::remote::to_resume(&kept, listed, plaintext_ok, policy);
    let mut sent = Vec::new();
    for f in found.iter().filter(|f| names.contains(&f.name)) {
        let Ok(m) = f.manifest.as_ref() else { continue };
        if !backup::inventory::check(&f.dir, m, None).0.usable() {
            continue;
        }
        r.upload(&f.dir, &f.name, m, listed).await?;
        sent.push(f.name.clone());
    }
    Ok(sent)
}

fn exit_code(e: &BackupError) -> Exit {
    match e {
        BackupError::Source(SourceError::Config { .. })
        | BackupError::Pki(_)
        | BackupError::Crypt(CryptError::Key(_) | CryptError::WrongIdentity { .. }) => Exit::Usage,
        BackupError::Source(_) | BackupError::Take(backup::take::TakeError::Etcd { .. }) => {
            Exit::NoSource
        }
        _ => Exit::Failed,
    }
}

/// With `--identity`, a new encrypted backup is opened and every member checked before
/// the run counts: a recipient list that no one holds a key for is found now, not at
/// the restore. The backup stays (it is whole; only the key is in doubt).
fn prove_it_opens(
    outcome: &backup::Outcome,
    identity: Option<&Identity>,
) -> Result<(), BackupError> {
    let (Some(identity), Some(_)) = (identity, &outcome.manifest.archive) else {
        return Ok(());
    };
    backup::inventory::open(&outcome.dir, &outcome.manifest, Some(identity), false).map_err(
        |p| match p {
            backup::inventory::Problem::Locked(why) => {
                BackupError::Crypt(CryptError::Key(format!("{why} (the backup was kept)")))
            }
            backup::inventory::Problem::Damaged(why) => BackupError::Unverified {
                file: outcome.dir.display().to_string(),
                reason: why,
            },
        },
    )?;
    Ok(())
}

/// Reads an identity file; a bad one is a usage error naming it.
pub fn load_identity(path: Option<&PathBuf>) -> Result<Option<Identity>, Failure> {
    path.map(|p| Identity::load(p).exit_with(Exit::Usage))
        .transpose()
}

/// The retention policy the flags give.
pub fn policy(args: &BackupArgs) -> Policy {
    Policy {
        keep_last: args.keep_last,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
    }
}

/// The format a subcommand prints in, as the shared report renderer knows it.
pub fn report_format(f: ListFormat) -> Format {
    match f {
        ListFormat::Text => Format::Text,
        ListFormat::Json => Format::Json,
    }
}
