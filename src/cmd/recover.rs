//! `kubeboot recover`: the operator gets a bootkube-style asset dir, rendered from the
//! control plane still stored in a live api-server, etcd or an etcd snapshot, ready for
//! `start`. The flags and exit codes are here; the recovery is [`crate::recover`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::etcd_flags::EtcdFlags;
use super::remote_read::RemoteRead;
use super::{Exit, ExitWith, Failure, OutputFlag, parse_duration, unseal_failure, usage};
use crate::assets;
use crate::backup::crypt::{self, Identity};
use crate::backup::fetch::Fetched;
use crate::encryption::EncryptionConfig;
use crate::recover::{RecoverError, Request, Source, recover};
use crate::render::{RenderError, RenderOptions};
use crate::source::SourceError;

// Flags keep bootkube's names; its `--etcd-*-path` spellings are accepted as aliases
// so existing runbooks keep working.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Where to write the asset dir. Must be absent or empty unless --force.
    #[arg(long, value_name = "DIR")]
    pub recovery_dir: PathBuf,
    /// The api-server to recover from, when neither --etcd-servers nor
    /// --etcd-backup-file is given; with either, only copied to auth/kubeconfig for the
    /// bootstrap control plane (as it is in both cases).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub etcd: EtcdFlags,
    /// Read from an `etcdctl snapshot save` file or a data-dir member/snap/db; or from
    /// a backup in object storage, by URL: s3://bucket/prefix/NAME, or …/latest for the
    /// newest whole one (downloaded and checked first; see --remote-option).
    #[arg(long, value_name = "FILE|URL")]
    pub etcd_backup_file: Option<PathBuf>,
    /// An age identity file: --etcd-backup-file may then be an encrypted backup
    /// (`backup.tar.age`); its snapshot is decrypted into a private temp dir, removed
    /// when recover ends.
    #[arg(long, value_name = "FILE", requires = "etcd_backup_file")]
    pub identity: Option<PathBuf>,
    /// The api-server's EncryptionConfiguration, to decrypt values encrypted at rest
    /// (etcd and snapshot sources).
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// Accept a snapshot without a sha256 trailer (a raw data-dir db).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// Refuse (exit 4, nothing written) when a stored object carries a protobuf field that
    /// kubeboot's descriptors do not know, instead of warning that its value is lost.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub remote: RemoteRead,
    #[command(flatten)]
    pub output: OutputFlag,
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
fn choose(args: &RecoverArgs) -> Result<Source, Failure> {
    args.etcd.check()?;
    match (&args.etcd_backup_file, args.etcd.etcd_servers.is_empty()) {
        (Some(file), true) => Ok(Source::Snapshot {
            file: file.clone(),
            skip_hash_check: args.skip_hash_check,
            // One file read and the process exits: mapped.
            map_or_exit: Some(Exit::NoSource as i32),
        }),
        (None, false) => Ok(Source::Etcd(args.etcd.config())),
        (Some(_), false) => Err(usage(
            "give only one of --etcd-servers and --etcd-backup-file",
        )),
        (None, true) => match &args.kubeconfig {
            Some(kubeconfig) => Ok(Source::Apiserver {
                kubeconfig: kubeconfig.clone(),
                request_timeout: args.apiserver_timeout,
            }),
            None => Err(usage(
                "give a source: --kubeconfig FILE (a running api-server), \
                 --etcd-servers URLS or --etcd-backup-file FILE",
            )),
        },
    }
}

/// The exit code of a recovery error: a file the operator named is a usage error, a
/// source that cannot be read at all or holds no control plane is 3, anything else 1.
pub fn exit_code(e: &RecoverError) -> Exit {
    match e {
        RecoverError::Source(SourceError::Config { .. }) => Exit::Usage,
        RecoverError::Source(e) if e.is_unreadable() => Exit::NoSource,
        RecoverError::Strict { .. } => Exit::Policy,
        RecoverError::Render(RenderError::NoComponents { .. }) => Exit::NoSource,
        _ => Exit::Failed,
    }
}

/// An encrypted `--etcd-backup-file` becomes a plain snapshot in a private dir (0700,
/// the file 0600) beside the recovery dir, removed when the returned guard drops; a
/// plain one is left as it is. A wrong identity or a damaged archive stops here, before
/// the recovery dir is touched.
fn decrypt_source(
    args: &RecoverArgs,
    source: &mut Source,
) -> Result<Option<crypt::PlainSnapshot>, Failure> {
    let Source::Snapshot { file, .. } = source else {
        return Ok(None);
    };
    if !crypt::is_age_file(file).unwrap_or(false) {
        if args.identity.is_some() {
            tracing::warn!(file = %file.display(), "--identity given, but the backup is not encrypted");
        }
        return Ok(None);
    }
    let Some(path) = &args.identity else {
        return Err(usage(format!(
            "{}: encrypted with age; give --identity FILE",
            file.display()
        )));
    };
    let identity = Identity::load(path).exit_with(Exit::Usage)?;
    let plain =
        crypt::unseal_snapshot(file, &identity, &private_base(args)).map_err(unseal_failure)?;
    tracing::info!(archive = %file.display(), "decrypted its snapshot into a private dir, removed when recover ends");
    *file = plain.path().to_path_buf();
    Ok(Some(plain))
}

/// Where a downloaded or decrypted backup goes for the length of the run: beside the
/// recovery dir (the same disk, which must hold the recovery anyway), else the temp dir.
fn private_base(args: &RecoverArgs) -> PathBuf {
    let parent = crate::fsutil::parent_of(&args.recovery_dir);
    if parent.is_dir() {
        parent.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A `--etcd-backup-file` URL becomes its downloaded backup's file (the snapshot, or the
/// archive `decrypt_source` then opens), removed when the returned guard drops.
fn fetch_source(args: &RecoverArgs, source: &mut Source) -> Result<Option<Fetched>, Failure> {
    let Source::Snapshot { file, .. } = source else {
        return Ok(None);
    };
    let fetched = args
        .remote
        .fetch_if_url(file, &private_base(args), Exit::NoSource)?;
    if let Some(f) = &fetched {
        *file = f.file();
    }
    Ok(fetched)
}

pub fn run(args: RecoverArgs) -> Result<(), Failure> {
    let mut source = choose(&args)?;
    assets::check_target(&args.recovery_dir, args.force).exit_with(Exit::Usage)?;
    // What kubeboot.json records as the source: what the operator named, not the
    // private copy read in its place.
    // A file by its absolute path, so the record finds it from anywhere.
    let origin = args.etcd_backup_file.as_ref().map(|f| {
        let named = f.display().to_string();
        match crate::backup::fetch::is_url(&named) {
            true => named,
            false => std::path::absolute(f).map_or(named, |p| p.display().to_string()),
        }
    });
    let _fetched = fetch_source(&args, &mut source)?;
    let _plain = decrypt_source(&args, &mut source)?;
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
    let req = Request {
        source,
        origin,
        etcd_prefix: args.etcd.etcd_prefix.clone(),
        kubeconfig,
        encryption: encryption.as_ref(),
        render: RenderOptions::under(
            &args.bootstrap_secrets_dir,
            args.bootstrap_kubeconfig.as_deref(),
        ),
        strict: args.strict,
    };
    // The network sources are async; a current-thread runtime spawns no threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let recovered = runtime.block_on(recover(&req)).map_err(|e| Failure {
        code: exit_code(&e),
        error: e.into(),
    })?;
    let moved = assets::write(&args.recovery_dir, &recovered.assets, args.force)?;
    let mut lines = Vec::new();
    if let Some(old) = &moved {
        lines.push(format!(
            "moved the previous {} aside to {}",
            args.recovery_dir.display(),
            old.display()
        ));
    }
    lines.extend(recovered.summary(&args.recovery_dir));
    let report = recovered.report(&args.recovery_dir, moved.as_deref());
    args.output.emit(&lines, &report)?;
    Ok(())
}
