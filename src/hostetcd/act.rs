//! What `ensure` does for a host-run etcd member, around the pure [`super::decide`]:
//! observe (probe every member, read the data dir), then restore or join with the unit
//! stopped and started through [`EtcdUnit`] (systemd over D-Bus in the product).
//!
//! Right before anything is moved, the member's own endpoint is probed and its data dir
//! read again; any change from what the decision saw aborts, as for a self-hosted etcd.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::decide::{ClusterView, Observed};
use super::member::Member;
use super::{join, probe, restore};
use crate::ensure::evidence::{self, LocalState};
use crate::fsutil;
use crate::source::etcd::EtcdConfig;

/// Stops and starts the member's unit, and has it read a changed drop-in.
#[allow(async_fn_in_trait)]
pub trait EtcdUnit {
    async fn stop(&self) -> Result<(), String>;
    async fn start(&self) -> Result<(), String>;
    async fn reload(&self) -> Result<(), String>;
}

/// The unit over D-Bus.
pub struct SystemdUnit {
    pub conn: zbus::Connection,
    pub name: String,
    pub timeout: Duration,
    pub poll: Duration,
}

impl EtcdUnit for SystemdUnit {
    async fn stop(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        crate::systemd::dbus::start_stop(&self.conn, &self.name, false, deadline, self.poll).await
    }
    async fn start(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        crate::systemd::dbus::start_stop(&self.conn, &self.name, true, deadline, self.poll).await
    }
    async fn reload(&self) -> Result<(), String> {
        crate::systemd::dbus::daemon_reload(&self.conn).await
    }
}

/// The host-run etcd member `ensure` looks after.
#[derive(Debug, Clone)]
pub struct HostEtcd {
    /// The unit's name, e.g. `etcd.service`.
    pub unit: String,
    pub member: Member,
    /// Client TLS and timeouts for every member's endpoint (its `endpoints` unused).
    pub client: EtcdConfig,
    /// The other members' client URLs.
    pub peers: Vec<String>,
    pub etcd_bin: PathBuf,
    pub restore_tool: PathBuf,
    pub bump: u64,
    /// The extra EnvironmentFile of a join, and the drop-in that names it.
    pub join_env: PathBuf,
    pub drop_in: PathBuf,
    pub timeout: Duration,
}

impl HostEtcd {
    fn cfg(&self, endpoint: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![endpoint.to_string()],
            ..self.client.clone()
        }
    }

    fn local_endpoint(&self) -> Result<&str, String> {
        self.member
            .client_urls
            .first()
            .map(String::as_str)
            .ok_or_else(|| format!("etcd member {} advertises no client URL", self.member.name))
    }
}

/// Everything `decide` needs, owned.
#[derive(Debug, Clone)]
pub struct Seen {
    pub local: Result<ClusterView, String>,
    pub peers: Vec<ClusterView>,
    pub data: LocalState,
}

impl Seen {
    pub fn observed<'a>(
        &self,
        h: &'a HostEtcd,
        backup: Option<i64>,
        may_restore: bool,
    ) -> Observed<'a> {
        Observed {
            me: &h.member,
            local: self.local.clone(),
            peers: self.peers.clone(),
            data: self.data.clone(),
            backup_revision: backup,
            may_restore,
        }
    }
}

/// Probes the member and its peers and reads the data dir.
pub async fn observe(h: &HostEtcd) -> Seen {
    let local = match h.local_endpoint() {
        Ok(e) => probe::probe(&h.cfg(e)).await,
        Err(e) => Err(e),
    };
    let mut peers = Vec::new();
    for p in &h.peers {
        if let Ok(v) = probe::probe(&h.cfg(p)).await {
            peers.push(v);
        }
    }
    let data = evidence::read_state(&h.member.data_dir);
    Seen { local, peers, data }
}

/// The re-check before anything is moved: the member still answers as it did, or
/// still does not and its data dir reads the same (a serving member's data changes
/// with every write, so only its cluster is compared).
async fn unchanged(h: &HostEtcd, before: &Seen) -> Result<(), String> {
    let now = observe(h).await;
    let same = match (&before.local, &now.local) {
        (Ok(a), Ok(b)) => a.cluster_id == b.cluster_id,
        (Err(_), Err(_)) => now.data == before.data,
        _ => false,
    };
    if !same {
        return Err(format!(
            "etcd member {} changed since the decision (its endpoint: {:?} then {:?}; its data: {:?} then {:?}); nothing was moved",
            h.member.name,
            before.local.as_ref().map(|c| c.cluster_id),
            now.local.as_ref().map(|c| c.cluster_id),
            before.data,
            now.data
        ));
    }
    Ok(())
}

/// Waits until the member's endpoint answers in cluster `want` (any when `None`).
async fn serving(h: &HostEtcd, want: Option<u64>) -> Result<ClusterView, String> {
    let endpoint = h.local_endpoint()?;
    let deadline = Instant::now() + h.timeout;
    loop {
        let why = match probe::probe(&h.cfg(endpoint)).await {
            Ok(v) if want.is_none_or(|w| v.cluster_id == w) => return Ok(v),
            Ok(v) => format!("it serves cluster {:x}", v.cluster_id),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "etcd member {} at {endpoint} not serving in time: {why}",
                h.member.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Restores `snapshot` as a new one-member cluster; returns the journal line.
pub async fn restore<U: EtcdUnit>(
    h: &HostEtcd,
    unit: &U,
    before: &Seen,
    snapshot: &Path,
    backup_revision: i64,
    node: &str,
) -> Result<String, String> {
    unchanged(h, before).await?;
    unit.stop().await?;
    let spec = restore::RestoreSpec {
        member: &h.member,
        snapshot,
        backup_revision,
        node,
        etcd: &h.etcd_bin,
        tool: &h.restore_tool,
        bump: h.bump,
        timeout: h.timeout,
    };
    let moved = restore::restore_new_cluster(&spec).await?;
    unit.start().await?;
    let v = serving(h, None).await?;
    let aside = moved.map_or(String::new(), |m| {
        format!("; the old data dir was moved aside to {}", m.display())
    });
    Ok(format!(
        "etcd member {} restored backup revision {backup_revision} as a new one-member cluster {:x} (now at revision {}){aside}",
        h.member.name, v.cluster_id, v.revision
    ))
}

/// Joins the cluster at `endpoint` with a fresh data dir; returns the journal line.
pub async fn join<U: EtcdUnit>(
    h: &HostEtcd,
    unit: &U,
    before: &Seen,
    endpoint: &str,
    replace: Option<u64>,
) -> Result<String, String> {
    unchanged(h, before).await?;
    unit.stop().await?;
    let plan = join::add_member(&h.cfg(endpoint), &h.member, replace).await?;
    let moved = if h.member.data_dir.exists() {
        Some(fsutil::move_aside(&h.member.data_dir).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let write = |p: &Path, text: String, mode| {
        fsutil::create_dir_all_with_mode(fsutil::parent_of(p), 0o755)
            .and_then(|_| fsutil::write_atomic(p, text.as_bytes(), mode))
            .map_err(|e| e.to_string())
    };
    write(&h.join_env, join::join_env(&plan), 0o644)?;
    write(&h.drop_in, join::drop_in(&h.join_env), 0o644)?;
    unit.reload().await?;
    let started = match unit.start().await {
        Ok(()) => serving(h, Some(plan.cluster_id)).await,
        Err(e) => Err(e),
    };
    // Inert once the data dir exists, and wrong for any later new data dir: removed
    // whatever happened.
    let _ = std::fs::remove_file(&h.drop_in);
    let _ = std::fs::remove_file(&h.join_env);
    let reloaded = unit.reload().await;
    let v = started?;
    reloaded?;
    let aside = moved.map_or(String::new(), |m| {
        format!("; its old data dir was moved aside to {}", m.display())
    });
    Ok(format!(
        "etcd member {} joined cluster {:x} at {endpoint} ({} members){aside}",
        h.member.name,
        v.cluster_id,
        v.members.len()
    ))
}
