//! The restore of a host-run etcd cluster as a new one-member cluster, on the master the
//! policy names, with its unit stopped (the caller stops and starts it).
//!
//! Why a private etcd: Debian's etcd (3.4) and most 3.5 tools cannot move the revision
//! on inside the restore (`--bump-revision` is etcdutl ≥ 3.5.10), and the unit's own
//! etcd would serve the restored data to the api-server at the backup's revision the
//! moment it starts. So the restored dir is first started by kubeboot on free loopback
//! ports, unreachable by anything else; the revision is moved on and compacted there
//! (as `start` does for a self-hosted etcd), the restore record is written, and it is
//! stopped. Only then does the dir take the data dir's place, with the old one moved
//! aside (never deleted), owned as the dir it replaces was, so the unit's user can open it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::member::Member;
use super::probe::{RESTORED_KEY, RestoredRecord};
use crate::fsutil;
use crate::source::etcd::{EtcdConfig, connect};

/// What the restore needs besides the member.
#[derive(Debug, Clone)]
pub struct RestoreSpec<'a> {
    pub member: &'a Member,
    pub snapshot: &'a Path,
    pub backup_revision: i64,
    /// This node's name, recorded in the cluster.
    pub node: &'a str,
    /// The etcd binary the unit runs.
    pub etcd: &'a Path,
    /// `etcdutl`, or `etcdctl` (API v3) for etcd before 3.5.
    pub tool: &'a Path,
    pub bump: u64,
    pub timeout: Duration,
}

/// The dir the restore is built in, beside the data dir.
fn building(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    fsutil::parent_of(data_dir).join(format!(".{name}.kubeboot-restoring"))
}

/// The tool's argv: both tools take the same restore flags.
pub fn restore_args(m: &Member, snapshot: &Path, into: &Path) -> Vec<String> {
    let mut args = vec![
        "snapshot".into(),
        "restore".into(),
        snapshot.display().to_string(),
        format!("--name={}", m.name),
        format!("--initial-cluster={}={}", m.name, m.peer_url),
        format!("--initial-advertise-peer-urls={}", m.peer_url),
        format!("--data-dir={}", into.display()),
    ];
    if let Some(t) = &m.token {
        args.push(format!("--initial-cluster-token={t}"));
    }
    args
}

/// Restores; returns where the old data dir was moved, if there was one.
pub async fn restore_new_cluster(s: &RestoreSpec<'_>) -> Result<Option<PathBuf>, String> {
    let data_dir = &s.member.data_dir;
    let tmp = building(data_dir);
    // A leftover of a restore killed half-way: ours, never data etcd ran on.
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| format!("removing {}: {e}", tmp.display()))?;
    }
    let out = tokio::process::Command::new(s.tool)
        .args(restore_args(s.member, s.snapshot, &tmp))
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running {}: {e}", s.tool.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_string();
        return Err(format!(
            "{} snapshot restore {} failed ({}): {last}",
            s.tool.display(),
            s.snapshot.display(),
            out.status
        ));
    }
    let rev = bump_privately(s, &tmp).await?;
    tracing::info!(
        "restored backup revision {} into {}; revision moved on to {rev} and compacted there, in a private etcd",
        s.backup_revision,
        tmp.display()
    );
    if let Some((uid, gid)) = owner_of(data_dir) {
        chown_tree(&tmp, uid, gid)?;
    }
    let moved = if data_dir.exists() {
        Some(fsutil::move_aside(data_dir).map_err(|e| e.to_string())?)
    } else {
        None
    };
    std::fs::rename(&tmp, data_dir)
        .map_err(|e| format!("moving {} to {}: {e}", tmp.display(), data_dir.display()))?;
    fsutil::fsync_dir(fsutil::parent_of(data_dir)).map_err(|e| e.to_string())?;
    Ok(moved)
}

/// A free port on 127.0.0.1 (the kernel's pick; free again once the listener is gone).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free loopback port: {e}"))
}

/// Starts etcd on `dir` on loopback only, moves the revision on, writes the restore
/// record, stops it; returns the compacted revision.
async fn bump_privately(s: &RestoreSpec<'_>, dir: &Path) -> Result<i64, String> {
    let (client_port, peer_port) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client_port}");
    let log = tempfile::NamedTempFile::new().map_err(|e| format!("a temp file: {e}"))?;
    let stderr = log.reopen().map_err(|e| format!("a temp file: {e}"))?;
    let mut child = tokio::process::Command::new(s.etcd)
        .env_clear()
        .arg(format!("--name={}", s.member.name))
        .arg(format!("--data-dir={}", dir.display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", s.etcd.display()))?;
    let result = bump_at(s, &url).await;
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
    result.map_err(|e| {
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        format!(
            "the private etcd on {}: {e} (its last lines: {})",
            dir.display(),
            tail.join(" | ")
        )
    })
}

async fn bump_at(s: &RestoreSpec<'_>, url: &str) -> Result<i64, String> {
    let mut cfg = EtcdConfig::new(vec![url.to_string()]);
    cfg.dial_timeout = Duration::from_secs(2);
    let deadline = Instant::now() + s.timeout;
    let client = loop {
        let why = match connect(&cfg).await {
            Ok(mut c) => match c.status().await {
                Ok(_) => break c,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!("not serving within {:?}: {why}", s.timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rev = crate::start::etcd::bump_and_compact(&client, s.bump).await?;
    let record = RestoredRecord {
        node: s.node.to_string(),
        backup_revision: s.backup_revision,
        restored_at: jiff::Timestamp::now().to_string(),
    };
    let body = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    client
        .kv_client()
        .put(RESTORED_KEY, body, None)
        .await
        .map_err(|e| format!("writing {RESTORED_KEY}: {e}"))?;
    Ok(rev)
}

/// Who owns the dir being replaced (or, for a new one, its parent): the unit's user.
fn owner_of(data_dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(data_dir)
        .or_else(|_| std::fs::symlink_metadata(fsutil::parent_of(data_dir)))
        .ok()?;
    Some((meta.uid(), meta.gid()))
}

/// `chown -R` without following links (etcd's data dir has none; a link is not walked).
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("chown {}: {e}", p.display());
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(|e| err(dir, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| err(dir, e))? {
        let entry = entry.map_err(|e| err(dir, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| err(&path, e))?.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(|e| err(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_repeats_the_members_identity_as_a_one_member_cluster() {
        let m = Member {
            name: "m1".into(),
            data_dir: "/var/lib/etcd/default".into(),
            peer_url: "https://10.0.0.1:2380".into(),
            client_urls: vec![],
            initial_cluster: vec![("m1".into(), "a".into()), ("m2".into(), "b".into())],
            token: Some("t".into()),
        };
        let args = restore_args(&m, Path::new("/b/s.db"), &building(&m.data_dir));
        assert!(args.contains(&"--initial-cluster=m1=https://10.0.0.1:2380".to_string()));
        assert!(args.contains(&"--data-dir=/var/lib/etcd/.default.kubeboot-restoring".to_string()));
        assert!(args.contains(&"--initial-cluster-token=t".to_string()));
        assert!(!args.iter().any(|a| a.contains("m2")));
    }
}
