//! `kubeboot recover`: the operator gets a bootkube-style asset dir, rendered from the
//! control plane still stored in a live etcd or an etcd snapshot, ready for `start`.
//! A self-hosted etcd recovered from a snapshot also gets the snapshot and its restore
//! (`etcd/`, `render::render_with_backup`); from a live source etcd is still alive and
//! is not restored.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::etcd_flags::EtcdFlags;
use super::{Exit, ExitWith, Failure, parse_duration, usage};
use crate::encryption::EncryptionConfig;
use crate::model::ControlPlane;
use crate::render::{self, EtcdBackup, RenderOptions};
use crate::source::{self, SourceError, apiserver::ApiserverConfig};
use crate::{assets, snapshot};

/// Flags keep bootkube's names; its `--etcd-*-path` spellings are accepted as aliases
/// so existing runbooks keep working.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Where to write the asset dir. Must be absent or empty unless --force.
    #[arg(long, value_name = "DIR")]
    pub recovery_dir: PathBuf,
    /// Kubeconfig copied to auth/kubeconfig for the bootstrap control plane.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdFlags,
    /// Read from an `etcdctl snapshot save` file or a data-dir member/snap/db.
    #[arg(long, value_name = "FILE")]
    pub etcd_backup_file: Option<PathBuf>,
    /// The api-server's EncryptionConfiguration, to decrypt values encrypted at rest
    /// (etcd and snapshot sources).
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// Accept a snapshot without a sha256 trailer (a raw data-dir db).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// Move a non-empty --recovery-dir aside (timestamped) instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// How long one api-server request may take (the --kubeconfig source).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub apiserver_timeout: Duration,
    /// Host dir the bootstrap pods mount Secrets and ConfigMaps from.
    #[arg(
        long,
        default_value = "/etc/kubernetes/bootstrap-secrets",
        value_name = "DIR"
    )]
    pub bootstrap_secrets_dir: String,
    /// Host path of the kubeconfig the bootstrap pods use
    /// [default: <bootstrap-secrets-dir>/kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub bootstrap_kubeconfig: Option<String>,
}

/// Which source the flags select; checked before anything touches disk or network.
enum Choice {
    Apiserver(PathBuf),
    Etcd,
    Snapshot(PathBuf),
}

fn choose(args: &RecoverArgs) -> Result<Choice, Failure> {
    args.etcd.check()?;
    match (&args.etcd_backup_file, args.etcd.etcd_servers.is_empty()) {
        (Some(file), true) => Ok(Choice::Snapshot(file.clone())),
        (None, false) => Ok(Choice::Etcd),
        (Some(_), false) => Err(usage(
            "give only one of --etcd-servers and --etcd-backup-file",
        )),
        (None, true) => match &args.kubeconfig {
            Some(kubeconfig) => Ok(Choice::Apiserver(kubeconfig.clone())),
            None => Err(usage(
                "give a source: --kubeconfig FILE (a running api-server), \
                 --etcd-servers URLS or --etcd-backup-file FILE",
            )),
        },
    }
}

/// Reads the chosen source into a `ControlPlane`.
fn read_source(
    choice: Choice,
    args: &RecoverArgs,
    kubeconfig: Option<Vec<u8>>,
    encryption: Option<&EncryptionConfig>,
    runtime: &tokio::runtime::Runtime,
) -> Result<ControlPlane, SourceError> {
    match choice {
        Choice::Snapshot(file) => {
            let opts = snapshot::Options {
                skip_hash_check: args.skip_hash_check,
            };
            tracing::info!(file = %file.display(), "reading etcd snapshot");
            let (stored, info) = source::snapshot::read(&file, &opts, &args.etcd.etcd_prefix)?;
            source::assemble(
                &args.etcd.etcd_prefix,
                &stored,
                info,
                kubeconfig,
                encryption,
            )
        }
        Choice::Etcd => {
            let cfg = args.etcd.config();
            tracing::info!(endpoints = %cfg.endpoints.join(","), "reading etcd");
            let prefixes = source::prefixes(&args.etcd.etcd_prefix);
            let (stored, info) = runtime.block_on(source::etcd::read(&cfg, &prefixes))?;
            source::assemble(
                &args.etcd.etcd_prefix,
                &stored,
                info,
                kubeconfig,
                encryption,
            )
        }
        Choice::Apiserver(path) => {
            let cfg = ApiserverConfig {
                request_timeout: args.apiserver_timeout,
                ..ApiserverConfig::default()
            };
            if encryption.is_some() {
                tracing::warn!(
                    "--encryption-provider-config is not needed with the api-server source: \
                     the api-server decrypts"
                );
            }
            tracing::info!(kubeconfig = %path.display(), "reading the api-server");
            runtime.block_on(source::apiserver::read(&path, &cfg, kubeconfig))
        }
    }
}

/// The backup file as a restore needs it: its exact bytes, and the revision and
/// trailer the snapshot reader finds in *those* bytes. A file that changed since the
/// source read it (another revision) is an error, not a restore of other data.
fn read_backup(
    file: &std::path::Path,
    args: &RecoverArgs,
    read_revision: Option<i64>,
) -> Result<EtcdBackup, Failure> {
    let bytes =
        std::fs::read(file).with_context(|| format!("--etcd-backup-file {}", file.display()))?;
    let opts = snapshot::Options {
        skip_hash_check: args.skip_hash_check,
    };
    let snap = snapshot::Snapshot::from_bytes(&file.display().to_string(), bytes.clone(), &opts)?;
    if read_revision != Some(snap.revision()) {
        return Err(anyhow::anyhow!(
            "--etcd-backup-file {} changed while it was read (revision {:?}, now {})",
            file.display(),
            read_revision,
            snap.revision()
        )
        .into());
    }
    Ok(EtcdBackup {
        bytes,
        revision: snap.revision(),
        has_trailer: snap.integrity() != snapshot::Integrity::NoTrailerSkipped,
    })
}

pub fn run(args: RecoverArgs) -> Result<(), Failure> {
    let choice = choose(&args)?;
    let backup_file = match &choice {
        Choice::Snapshot(file) => Some(file.clone()),
        _ => None,
    };
    assets::check_target(&args.recovery_dir, args.force).exit_with(Exit::Usage)?;
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))
                .exit_with(Exit::Usage)?,
        ),
        None => None,
    };
    let encryption = match &args.encryption_provider_config {
        Some(path) => Some(EncryptionConfig::from_file(path).exit_with(Exit::Usage)?),
        None => None,
    };
    // The network sources are async; a current-thread runtime spawns no threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let cp =
        read_source(choice, &args, kubeconfig, encryption.as_ref(), &runtime).map_err(|e| {
            let code = match &e {
                SourceError::Config { .. } => Exit::Usage,
                e if e.is_unreadable() => Exit::NoSource,
                _ => Exit::Failed,
            };
            Failure {
                code,
                error: e.into(),
            }
        })?;
    for warning in &cp.warnings {
        tracing::warn!("{warning}");
    }
    let opts = RenderOptions {
        kubeconfig_host_path: args
            .bootstrap_kubeconfig
            .clone()
            .unwrap_or_else(|| format!("{}/kubeconfig", args.bootstrap_secrets_dir)),
        secrets_host_dir: args.bootstrap_secrets_dir.clone(),
    };
    let self_hosted_etcd = render::has_self_hosted_etcd(&cp);
    let backup = match (&backup_file, self_hosted_etcd) {
        (Some(file), true) => Some(read_backup(file, &args, cp.source.revision)?),
        _ => None,
    };
    let assets = render::render_with_backup(&cp, &opts, backup.as_ref())?;
    assets::write(&args.recovery_dir, &assets, args.force)?;
    let revision = cp.source.revision.map_or("?".into(), |r| r.to_string());
    let components = assets
        .files
        .keys()
        .filter(|p| p.starts_with("bootstrap-manifests/"))
        .count();
    println!(
        "recovered {components} control-plane component(s) from {} at revision {} into {} ({} files)",
        cp.source.location,
        revision,
        args.recovery_dir.display(),
        assets.files.len()
    );
    match &backup {
        Some(b) => println!(
            "self-hosted etcd: bootstrap-etcd restores it from {} (revision {}) into a fresh data dir; see {}",
            render::SNAPSHOT_ASSET,
            b.revision,
            render::RESTORE_ASSET
        ),
        None if self_hosted_etcd => println!(
            "self-hosted etcd: still alive (read from {}), so bootstrap-etcd starts on its existing data dir; no restore",
            cp.source.location
        ),
        None => {}
    }
    if cp.kubeconfig.is_none() {
        println!(
            "note: no --kubeconfig given; put one at {}/auth/kubeconfig before `kubeboot start`",
            args.recovery_dir.display()
        );
    }
    Ok(())
}
