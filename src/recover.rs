//! Recovery as a library call: one source in, an asset dir in memory out. `kubeboot
//! recover` writes it where the operator said; `kubeboot ensure` writes it under its
//! recovery root and hands it to `start`. Nothing here touches the disk but to read.
//!
//! A self-hosted etcd recovered from a snapshot also gets the snapshot and its restore
//! (`etcd/`, [`render::render_with_backup`]); from a live source etcd is still alive
//! and is not restored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::encryption::EncryptionConfig;
use crate::model::{AssetDir, ControlPlane};
use crate::render::{self, EtcdBackup, RenderError, RenderOptions};
use crate::snapshot::{self, Snapshot};
use crate::source::{self, SourceError, apiserver::ApiserverConfig, etcd::EtcdConfig};

/// Where the control plane is read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A running api-server, through this kubeconfig.
    Apiserver {
        kubeconfig: PathBuf,
        request_timeout: Duration,
    },
    Etcd(EtcdConfig),
    /// An `etcdctl snapshot save` file (or a raw db with `skip_hash_check`).
    Snapshot {
        file: PathBuf,
        skip_hash_check: bool,
        /// `snapshot::Options::map_or_exit`: mapped by `recover`, read by `ensure`.
        map_or_exit: Option<i32>,
    },
}

impl Source {
    /// A short name for logs, asset-dir names and `ensure`'s decision.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Apiserver { .. } => "apiserver",
            Source::Etcd(_) => "etcd",
            Source::Snapshot { .. } => "backup",
        }
    }
}

/// One recovery.
#[derive(Debug)]
pub struct Request<'a> {
    pub source: Source,
    /// What the record of the recovery names as its source when the file read is a
    /// private copy of it (a downloaded or decrypted backup); `None`: the source itself.
    pub origin: Option<String>,
    pub etcd_prefix: String,
    /// Copied to `auth/kubeconfig`.
    pub kubeconfig: Option<Vec<u8>>,
    pub encryption: Option<&'a EncryptionConfig>,
    pub render: RenderOptions,
    /// Refuse objects carrying protobuf fields no compiled descriptors know (`--strict`).
    pub strict: bool,
}

/// What a recovery produced.
#[derive(Debug)]
pub struct Recovered {
    pub cp: ControlPlane,
    pub assets: AssetDir,
    /// The revision of the snapshot put into `etcd/` for a self-hosted etcd restore.
    pub restored_revision: Option<i64>,
    pub self_hosted_etcd: bool,
}

/// What `recover -o json|yaml` prints (docs/cli.md).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    pub recovery_dir: String,
    /// Where `--force` moved the earlier dir.
    pub moved_aside: Option<String>,
    pub source: &'a crate::model::SourceInfo,
    /// The components a bootstrap manifest was written for (`bootstrap-NAME.yaml`).
    pub components: Vec<String>,
    /// Every file of the asset dir, `kubeboot.json` included.
    pub files: usize,
    pub self_hosted_etcd: bool,
    /// The snapshot revision bootstrap-etcd restores, for a self-hosted etcd restore.
    pub restored_revision: Option<i64>,
    /// Whether `auth/kubeconfig` was written (from `--kubeconfig`).
    pub kubeconfig: bool,
}

impl Recovered {
    /// The machine-readable form of [`Recovered::summary`].
    pub fn report(&self, dir: &Path, moved_aside: Option<&Path>) -> Report<'_> {
        Report {
            recovery_dir: dir.display().to_string(),
            moved_aside: moved_aside.map(|p| p.display().to_string()),
            source: &self.cp.source,
            components: self
                .assets
                .files
                .keys()
                .filter_map(|p| p.strip_prefix("bootstrap-manifests/"))
                .map(|f| {
                    let f = f.strip_suffix(".yaml").unwrap_or(f);
                    f.strip_prefix("bootstrap-").unwrap_or(f).to_string()
                })
                .collect(),
            files: self.assets.files.len(),
            self_hosted_etcd: self.self_hosted_etcd,
            restored_revision: self.restored_revision,
            kubeconfig: self.cp.kubeconfig.is_some(),
        }
    }

    /// What was recovered, in lines for the operator.
    pub fn summary(&self, dir: &Path) -> Vec<String> {
        let cp = &self.cp;
        let revision = cp.source.revision.map_or("?".into(), |r| r.to_string());
        let components = self
            .assets
            .files
            .keys()
            .filter(|p| p.starts_with("bootstrap-manifests/"))
            .count();
        let mut lines = vec![format!(
            "recovered {components} control-plane component(s) from {} at revision {} into {} ({} files)",
            cp.source.location,
            revision,
            dir.display(),
            self.assets.files.len()
        )];
        match self.restored_revision {
            Some(revision) => lines.push(format!(
                "self-hosted etcd: bootstrap-etcd restores it from {} (revision {revision}) into a fresh data dir; see {}",
                render::SNAPSHOT_ASSET,
                render::RESTORE_ASSET
            )),
            None if self.self_hosted_etcd => lines.push(format!(
                "self-hosted etcd: still alive (read from {}), so bootstrap-etcd starts on its existing data dir; no restore",
                cp.source.location
            )),
            None => {}
        }
        if cp.kubeconfig.is_none() {
            lines.push(format!(
                "note: no --kubeconfig given; put one at {}/auth/kubeconfig before `kubeboot start`",
                dir.display()
            ));
        }
        lines
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Render(#[from] RenderError),
    /// `--strict`, and an object holds a field whose value the recovery would lose.
    #[error(
        "--strict: {first} is unknown to kubeboot's descriptors{}; nothing written (without --strict it is a warning in kubeboot.json)",
        if *more > 0 { format!(" (and {more} more)") } else { String::new() }
    )]
    Strict { first: String, more: usize },
}

/// Reads the source and renders the asset dir.
pub async fn recover(req: &Request<'_>) -> Result<Recovered, RecoverError> {
    if !matches!(req.source, Source::Apiserver { .. }) {
        // What etcd stores is protobuf, decoded after the read.
        crate::codec::build_beside();
    }
    let (mut cp, snap) = read(req).await?;
    if let Some(origin) = &req.origin {
        cp.source.location = origin.clone();
    }
    for warning in &cp.warnings {
        tracing::warn!("{warning}");
    }
    if req.strict
        && let Some(first) = cp.unknown_fields.first()
    {
        return Err(RecoverError::Strict {
            first: first.clone(),
            more: cp.unknown_fields.len() - 1,
        });
    }
    let self_hosted_etcd = render::has_self_hosted_etcd(&cp);
    // The restore is of the very bytes the objects were read from: one read, one file.
    let backup = snap.filter(|_| self_hosted_etcd).map(backup_of);
    let assets = render::render_with_backup(&cp, &req.render, backup.as_ref())?;
    Ok(Recovered {
        restored_revision: backup.map(|b| b.revision),
        cp,
        assets,
        self_hosted_etcd,
    })
}

/// The control plane, and the snapshot it came from when the source is a file (a
/// restore of self-hosted etcd needs its bytes).
async fn read(req: &Request<'_>) -> Result<(ControlPlane, Option<Snapshot>), SourceError> {
    let prefix = &req.etcd_prefix;
    let kubeconfig = req.kubeconfig.clone();
    match &req.source {
        Source::Snapshot {
            file,
            skip_hash_check,
            map_or_exit,
        } => {
            let opts = snapshot::Options {
                skip_hash_check: *skip_hash_check,
                status: false,
                map_or_exit: *map_or_exit,
            };
            tracing::info!(file = %file.display(), source = req.source.kind(), "reading etcd snapshot");
            let (stored, info, snap) = source::snapshot::read(file, &opts, prefix)?;
            let cp = source::assemble(prefix, &stored, info, kubeconfig, req.encryption)?;
            Ok((cp, Some(snap)))
        }
        Source::Etcd(cfg) => {
            tracing::info!(endpoints = %cfg.endpoints.join(","), source = req.source.kind(), "reading etcd");
            let prefixes = source::prefixes(prefix);
            let (stored, info) = source::etcd::read(cfg, &prefixes).await?;
            let cp = source::assemble(prefix, &stored, info, kubeconfig, req.encryption)?;
            Ok((cp, None))
        }
        Source::Apiserver {
            kubeconfig: path,
            request_timeout,
        } => {
            let cfg = ApiserverConfig {
                request_timeout: *request_timeout,
                ..ApiserverConfig::default()
            };
            if req.encryption.is_some() {
                tracing::warn!(
                    "--encryption-provider-config is not needed with the api-server source: \
                     the api-server decrypts"
                );
            }
            tracing::info!(kubeconfig = %path.display(), source = req.source.kind(), "reading the api-server");
            Ok((source::apiserver::read(path, &cfg, kubeconfig).await?, None))
        }
    }
}

/// The backup file as a restore needs it: its exact bytes, and the revision and trailer
/// the snapshot reader found in them.
fn backup_of(snap: Snapshot) -> EtcdBackup {
    EtcdBackup {
        revision: snap.revision(),
        has_trailer: snap.integrity() != snapshot::Integrity::NoTrailerSkipped,
        sha256: snap.file_sha256(),
        bytes: snap.into_file(),
    }
}
