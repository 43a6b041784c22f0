//! Streams an etcd snapshot to a file: the same Maintenance/Snapshot call as
//! `etcdctl snapshot save`, so the file carries etcd's own sha256 trailer and any
//! etcd tool can restore it. Only the file's own dir is written; the caller makes it
//! a backup (or throws it away) as a whole.
//!
//! The bytes are hashed as they arrive (the trailer and the manifest's sum in one pass):
//! hashing the file again cost a backup half again what `etcdctl snapshot save` takes
//! (docs/benchmarks.md). They are not kept in memory: a copy of the database held in the
//! master's memory (2× the file at its peak, 8 GiB for a full etcd) is what the kernel's
//! OOM killer would take from etcd or the api-server. The check that the backup
//! restores maps the file it was written to; its pages are still in the page cache.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use etcd_client::Client;

use crate::snapshot::trailer::{Streamed, Streaming};

/// A snapshot written to its file, with its length and sums. The file is being fsynced
/// on a thread of its own meanwhile: the check that it restores reads the page cache
/// and need not wait for the disk.
#[derive(Debug)]
pub struct Taken {
    pub len: u64,
    pub hashes: Streamed,
    pub sync: Syncing,
}

/// The fsync of a snapshot file under way.
#[derive(Debug)]
pub struct Syncing {
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    path: String,
}

impl Syncing {
    /// Waits until the file is on the disk.
    pub fn wait(self) -> Result<(), TakeError> {
        let file_err = |reason: String| TakeError::File {
            path: self.path.clone(),
            reason,
        };
        self.thread
            .join()
            .map_err(|_| file_err("fsync: the thread panicked".into()))?
            .map_err(|e| file_err(format!("fsync: {e}")))
    }
}

/// Why a snapshot could not be taken. `Etcd` means etcd could not be read (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("etcd {endpoint}: snapshot: {reason}")]
    Etcd { endpoint: String, reason: String },
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// The stream grew past `--max-size` (the database grew since it was sized).
    #[error("etcd {endpoint}: the snapshot passed --max-size {cap} bytes; nothing kept")]
    TooLarge { endpoint: String, cap: u64 },
}

/// etcd's database size in bytes (Maintenance/Status), what the snapshot will be.
pub async fn db_size(
    client: &mut Client,
    endpoint: &str,
    idle_timeout: Duration,
) -> Result<u64, TakeError> {
    let etcd_err = |reason: String| TakeError::Etcd {
        endpoint: endpoint.to_string(),
        reason,
    };
    let status = tokio::time::timeout(idle_timeout, client.status())
        .await
        .map_err(|_| etcd_err(format!("status: no answer within {idle_timeout:?}")))?
        .map_err(|e| etcd_err(format!("status: {}", crate::source::error_chain(&e))))?;
    Ok(u64::try_from(status.db_size()).unwrap_or(0))
}

/// Writes the snapshot stream to `file` (created 0600, fsynced) and returns it.
/// `idle_timeout` bounds the wait for each chunk, not the whole transfer: a large
/// database may take minutes, a stalled stream must not hang a timer unit forever.
/// A stream longer than `max_bytes` is cut off with [`TakeError::TooLarge`].
pub async fn snapshot_to(
    client: &mut Client,
    endpoint: &str,
    file: &Path,
    idle_timeout: Duration,
    max_bytes: u64,
) -> Result<Taken, TakeError> {
    let etcd_err = |reason: String| TakeError::Etcd {
        endpoint: endpoint.to_string(),
        reason,
    };
    let file_err = |e: std::io::Error| TakeError::File {
        path: file.display().to_string(),
        reason: e.to_string(),
    };
    let mut stream = tokio::time::timeout(idle_timeout, client.snapshot())
        .await
        .map_err(|_| etcd_err(format!("no answer within {idle_timeout:?}")))?
        .map_err(|e| etcd_err(crate::source::error_chain(&e)))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(file_err)?;
    let mut written = 0u64;
    let mut hashes = Streaming::default();
    loop {
        let next = tokio::time::timeout(idle_timeout, stream.message())
            .await
            .map_err(|_| {
                etcd_err(format!(
                    "stream stalled for {idle_timeout:?} after {written} bytes"
                ))
            })?
            .map_err(|e| {
                etcd_err(format!(
                    "stream broke after {written} bytes: {}",
                    crate::source::error_chain(&e)
                ))
            })?;
        let Some(chunk) = next else { break };
        written += chunk.blob().len() as u64;
        if written > max_bytes {
            return Err(TakeError::TooLarge {
                endpoint: endpoint.to_string(),
                cap: max_bytes,
            });
        }
        out.write_all(chunk.blob()).map_err(file_err)?;
        hashes.update(chunk.blob());
    }
    if written == 0 {
        return Err(etcd_err("the stream was empty".into()));
    }
    let sync = std::thread::Builder::new()
        .name("snapshot-fsync".into())
        .spawn(move || out.sync_all())
        .map_err(file_err)?;
    Ok(Taken {
        len: written,
        hashes: hashes.finish(),
        sync: Syncing {
            thread: sync,
            path: file.display().to_string(),
        },
    })
}
