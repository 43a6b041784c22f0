//! Self-hosted etcd restored from a backup (`etcd/` in the asset dir, written by
//! `recover --etcd-backup-file`).
//!
//! The restore itself runs in the bootstrap-etcd pod's init container, with the etcd
//! image's own tool, into the data dir the self-hosted etcd uses. `start` prepares and
//! finishes around it, on the host:
//! - *Before:* the existing data dir is moved aside with a timestamp, never deleted,
//!   so the restore writes into an absent dir (the restore tools refuse an existing
//!   one). A data dir that a previous `start` already restored from this same snapshot
//!   (a marker beside it names the snapshot's sha256) is kept, and the init container
//!   is left out of the pod, so a `start` run again after `kill -9` does not roll the
//!   cluster back a second time.
//! - *After:* the revision jump. A restored etcd is back at the snapshot's revision,
//!   while every informer, kubelet and watch cache has seen resourceVersions up to the
//!   moment of the disaster. A client that watches from such a resourceVersion either
//!   sees nothing until the revision catches up, or sees new objects under
//!   resourceVersions it has already used. `etcdutl snapshot restore --bump-revision
//!   --mark-compacted` (etcd ≥ 3.5.10) fixes this inside the restore, and `recover`
//!   uses it when the image has it (`revision_bumped` in restore.json). Older tools
//!   (etcd 3.4, 3.5.1 — all this project can run in its tests) lack it; `start` does the same
//!   through the API before any api-server uses the data: `--etcd-revision-bump`
//!   writes to one key (each write is one revision), deletes it, and compacts at the
//!   new revision. Every watch from an older resourceVersion then fails with
//!   "compacted" (410 Gone through the api-server), which makes informers relist.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcd_client::{Client, CompactionOptions};
use futures::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Pod;

use super::plan::{BootstrapPod, EtcdRestore};
use super::progress::Progress;
use super::{StartError, install, wait_for};
use crate::fsutil::{self, FsError};
use crate::render::RESTORE_CONTAINER;
use crate::source::etcd::{EtcdConfig, connect};

/// The key the revision bump writes, then deletes.
const BUMP_KEY: &[u8] = b"/kubeboot/revision-bump";
/// Writes in flight during the bump.
const BUMP_CONCURRENCY: usize = 64;

/// The marker beside `data_dir` saying which snapshot it was restored from.
fn marker(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    fsutil::parent_of(data_dir).join(format!(".{name}.kubeboot-restored"))
}

/// Whether `data_dir` holds a restore of `sha256` made by an earlier `start`.
pub fn already_restored(data_dir: &Path, sha256: &str) -> bool {
    data_dir.is_dir() && std::fs::read_to_string(marker(data_dir)).is_ok_and(|m| m.trim() == sha256)
}

/// Moves an existing data dir aside (unless it is our finished restore); returns where.
pub fn prepare_data_dir(data_dir: &Path, sha256: &str) -> Result<Option<PathBuf>, FsError> {
    if already_restored(data_dir, sha256) || data_dir.symlink_metadata().is_err() {
        return Ok(None);
    }
    let moved = fsutil::move_aside(data_dir)?;
    let _ = std::fs::remove_file(marker(data_dir));
    Ok(Some(moved))
}

/// Records that `data_dir` now holds the restore of `sha256`.
pub fn mark_restored(data_dir: &Path, sha256: &str) -> Result<(), FsError> {
    fsutil::write_atomic(&marker(data_dir), format!("{sha256}\n").as_bytes(), 0o600)
}

/// bootstrap-etcd without its restore init container (the data dir is restored).
pub fn without_restore(b: &BootstrapPod) -> Result<Vec<u8>, StartError> {
    let bad = |reason: String| StartError::Input(format!("{}: {reason}", b.file));
    let mut pod: Pod = serde_yaml_ng::from_slice(&b.bytes).map_err(|e| bad(e.to_string()))?;
    if let Some(spec) = pod.spec.as_mut()
        && let Some(init) = spec.init_containers.as_mut()
    {
        init.retain(|c| c.name != RESTORE_CONTAINER);
    }
    serde_yaml_ng::to_string(&pod)
        .map(String::into_bytes)
        .map_err(|e| bad(e.to_string()))
}

fn etcd_config(r: &EtcdRestore, request_timeout: Duration) -> EtcdConfig {
    let mut cfg = EtcdConfig::new(r.etcd_servers.clone());
    cfg.ca_file = r.client_ca.clone();
    cfg.cert_file = r.client_cert.clone();
    cfg.key_file = r.client_key.clone();
    cfg.dial_timeout = request_timeout;
    cfg.request_timeout = request_timeout;
    cfg
}

/// Waits until the restored etcd answers; returns a client to it.
pub async fn wait_healthy(
    r: &EtcdRestore,
    deadline: Instant,
    poll: Duration,
    request_timeout: Duration,
    progress: &mut Progress,
) -> Result<Client, StartError> {
    let cfg = etcd_config(r, request_timeout);
    let what = format!("the restored etcd at {}", r.etcd_servers.join(","));
    wait_for(&what, deadline, poll, progress, async || {
        let mut client = connect(&cfg).await.map_err(|e| e.to_string())?;
        client.status().await.map_err(|e| format!("status: {e}"))?;
        Ok(client)
    })
    .await
}

/// The revision jump described in the module doc; returns the revision compacted at.
pub async fn bump_and_compact(client: &Client, by: u64) -> Result<i64, String> {
    let puts = stream::iter(0..by).map(|i| {
        let mut kv = client.kv_client();
        async move { kv.put(BUMP_KEY, i.to_string(), None).await }
    });
    let mut results = puts.buffer_unordered(BUMP_CONCURRENCY);
    while let Some(r) = results.next().await {
        r.map_err(|e| format!("writing {}: {e}", String::from_utf8_lossy(BUMP_KEY)))?;
    }
    let mut kv = client.kv_client();
    let deleted = kv
        .delete(BUMP_KEY, None)
        .await
        .map_err(|e| format!("deleting the bump key: {e}"))?;
    let revision = deleted.header().map_or(0, |h| h.revision());
    kv.compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .map_err(|e| format!("compacting at {revision}: {e}"))?;
    Ok(revision)
}

/// Installs bootstrap-etcd (restoring unless already restored), waits for it, moves the
/// revision on and marks the restore. Runs before any api-server is installed. Returns
/// the manifest bytes installed, which pivot and clean-up must match.
pub async fn restore(
    r: &EtcdRestore,
    b: &BootstrapPod,
    opts: &super::StartOptions,
    deadline: Instant,
    progress: &mut Progress,
) -> Result<Vec<u8>, StartError> {
    let data_dir = opts
        .etcd_data_dir
        .clone()
        .unwrap_or_else(|| r.data_dir.clone());
    let restored = already_restored(&data_dir, &r.sha256);
    let bytes = if restored {
        progress.step(&format!(
            "{} already holds this snapshot's restore; etcd starts on it as it is",
            data_dir.display()
        ));
        without_restore(b)?
    } else {
        if let Some(moved) = prepare_data_dir(&data_dir, &r.sha256)? {
            progress.warn(&format!(
                "moved the old etcd data dir {} aside to {}",
                data_dir.display(),
                moved.display()
            ));
        }
        progress.step(&format!(
            "restoring etcd from the snapshot at revision {} into {}",
            r.revision,
            data_dir.display()
        ));
        b.bytes.clone()
    };
    install::install_manifest(&opts.pod_manifest_dir, &b.file, &bytes)?;
    let client = wait_healthy(r, deadline, opts.poll, opts.request_timeout, progress).await?;
    if !restored && r.revision_bumped {
        mark_restored(&data_dir, &r.sha256)?;
        progress
            .step("etcd restored; the restore tool moved the revision on and marked it compacted");
    } else if !restored {
        let by = opts.etcd_revision_bump;
        let rev = bump_and_compact(&client, by).await.map_err(|reason| {
            StartError::Etcd(format!("{}: {reason}", r.etcd_servers.join(",")))
        })?;
        // Marked only now: a `start` killed before this point restores (and bumps) again.
        mark_restored(&data_dir, &r.sha256)?;
        progress.step(&format!(
            "etcd restored; revision moved on by {by} to {rev} and compacted there, so clients relist"
        ));
    }
    if !restored {
        // Only once the restore holds: the data dirs moved aside before it are the
        // fall-back while it might still fail. They hold every Secret of the cluster.
        for old in fsutil::prune_asides(&data_dir, opts.keep_moved_aside)? {
            progress.step(&format!(
                "removed {} (keeping the {} newest earlier copies, --keep-moved-aside)",
                old.display(),
                opts.keep_moved_aside
            ));
        }
    }
    Ok(bytes)
}
