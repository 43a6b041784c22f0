//! What `ensure` does about what it saw: a pure function of one round of health
//! probes, the time since it began, and the policy, so every branch of the fallback
//! chain is unit-tested without a cluster.
//!
//! The order is the design's: a control plane that is up is left alone; one that may
//! still be coming up by itself (a reboot, checkpoints starting the api-server) is
//! given `boot_grace` before anything is touched, because a recovery racing a normal
//! boot is the one thing worse than a slow boot; then the best source still alive
//! wins: the api-server (it still serves the objects: only components are gone —
//! nothing of them runs on a live node; a component whose pods exist but stay
//! un-Ready is reported, never recovered: see [`super::components`]),
//! else etcd, else the newest whole backup. A backup restores the past, so it is
//! taken only when policy allows it on this node (docs/design.md §5: two masters must
//! never restore two different pasts), and only for a self-hosted etcd, the one
//! kind of etcd kubeboot can restore; an external etcd that is gone is the
//! operator's to bring back first, and `ensure` says so.
//!
//! And a backup is restored only over local etcd data that is missing, unreadable or
//! older than it: etcd not answering is not evidence that its data is gone (it may be
//! stopped, crash-looping on a certificate, or simply not configured here), and an
//! intact data dir at a revision at least the backup's is the newest past there is.
//! It is never restored over: when a static pod on this node runs etcd (a checkpoint
//! starting late), `ensure` waits for it; when nothing will start it, the node that
//! policy names starts it itself (`Via::Local`: bootstrap-etcd on the dir as it is).

use std::path::PathBuf;
use std::time::Duration;

pub use super::evidence::{LocalData, LocalState};
pub use super::marker::Marker;

/// One round of probes. `None` means "not probed": the caller probes etcd and the
/// backups only once the api-server is known to be down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub elapsed: Duration,
    pub kubelet: Kubelet,
    pub apiserver: Apiserver,
    /// `None` when no etcd endpoints are configured.
    pub etcd: Option<Result<(), String>>,
    /// The newest whole backup, or why there is none.
    pub backup: Result<Backup, String>,
    /// The local etcd data dir; `None` until it was read (read with the backups).
    pub local: Option<LocalData>,
    /// The last restore this node knows of (see [`super::marker`]).
    pub marker: Option<Marker>,
}

/// The kubelet, by its healthz port and (when asked) its systemd unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kubelet {
    Healthy,
    /// Not healthy yet; may still come up.
    Down(String),
    /// Its unit has failed or is stopped: waiting will not bring it back.
    Failed(String),
}

/// What the api-server probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apiserver {
    /// `/readyz` failed (or no client could be made).
    Down(String),
    /// `/readyz` is ok. The required components that are not Ready, each
    /// `ns/name: what its pods are doing` (see [`super::components`]): `unready`
    /// have a pod on a live node (or nothing to recover them from), `gone` have none.
    Up {
        unready: Vec<String>,
        gone: Vec<String>,
    },
    /// It answered 401 or 403: it is there, and refuses kubeboot's credentials.
    Denied(String),
}

/// A backup `ensure` could restore from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub snapshot: PathBuf,
    pub revision: i64,
    pub self_hosted_etcd: bool,
    /// The object store URL it was downloaded from (`--backup-remote`), when no backup
    /// on this node was whole; `snapshot` is then its private copy.
    pub from: Option<String>,
}

impl Backup {
    /// What it is, for people and the record: its URL in the store, else its path.
    pub fn source(&self) -> String {
        self.from
            .clone()
            .unwrap_or_else(|| self.snapshot.display().to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How long the control plane may take to come up by itself.
    pub boot_grace: Duration,
    /// Restoring from a backup, or starting the local etcd data dir, is allowed on
    /// this node: the two recoveries that run without etcd's cluster lock.
    pub backup_restore_allowed: bool,
}

/// Where a recovery reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Apiserver,
    Etcd,
    Backup(Backup),
    /// The local etcd data dir, intact and not older than any backup: its db is read
    /// natively as the source, and bootstrap-etcd starts on the dir as it is.
    Local {
        dir: PathBuf,
        revision: i64,
    },
}

impl Via {
    /// One word for the source: `--dry-run -o json`'s `via` and the journal's
    /// `KUBEBOOT_SOURCE`.
    pub fn word(&self) -> &'static str {
        match self {
            Via::Apiserver => "apiserver",
            Via::Etcd => "etcd",
            Via::Backup(_) => "backup",
            Via::Local { .. } => "local",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Healthy,
    /// The api-server answers and runs every component, but some stay un-Ready:
    /// reported, never recovered (exit 6).
    Unhealthy(String),
    /// Look again; the reason is shown while waiting.
    Wait(String),
    /// Recover from this source, then start; the reason says why.
    Recover { via: Via, why: String },
    /// A backup could be restored, but not here (exit 4).
    Refused(String),
    /// Nothing alive to recover from (exit 3).
    NoSource(String),
    /// Recovery is impossible on this node as it is (exit 1).
    Failed(String),
    /// kubeboot's own configuration is wrong (exit 2).
    Misconfigured(String),
}

impl Decision {
    /// One word for the decision: `--dry-run -o json`'s `decision` and the journal's
    /// `KUBEBOOT_DECISION`.
    pub fn word(&self) -> &'static str {
        match self {
            Decision::Healthy => "healthy",
            Decision::Wait(_) => "wait",
            Decision::Recover { .. } => "recover",
            Decision::Unhealthy(_) => "unhealthy",
            Decision::Refused(_) => "refused",
            Decision::NoSource(_) => "no-source",
            Decision::Failed(_) => "failed",
            Decision::Misconfigured(_) => "misconfigured",
        }
    }
}

pub fn decide(o: &Observation, p: &Policy) -> Decision {
    let in_grace = o.elapsed < p.boot_grace;
    const WHY_KUBELET: &str = "the bootstrap control plane runs as its static pods, so nothing can be recovered without it";
    match &o.kubelet {
        Kubelet::Healthy => {}
        Kubelet::Down(why) if in_grace => {
            return Decision::Wait(format!("the kubelet is not healthy yet: {why}"));
        }
        Kubelet::Down(why) => {
            return Decision::Failed(format!(
                "the kubelet is not healthy after {:?}: {why}; {WHY_KUBELET}",
                p.boot_grace
            ));
        }
        Kubelet::Failed(why) => {
            return Decision::Failed(format!("the kubelet is down: {why}; {WHY_KUBELET}"));
        }
    }
    let down = match &o.apiserver {
        Apiserver::Up { unready, gone } if unready.is_empty() && gone.is_empty() => {
            return Decision::Healthy;
        }
        Apiserver::Up { unready, gone } if in_grace => {
            let what = [gone.as_slice(), unready.as_slice()].concat().join("; ");
            return Decision::Wait(format!("the api-server is up; waiting for {what}"));
        }
        Apiserver::Up { unready, gone } if gone.is_empty() => {
            return Decision::Unhealthy(format!(
                "the api-server is up and runs every required component, but after {:?} some are not Ready: {}; reported, not recovered (their pods exist: a recovery would write the same objects back and wait on the same pods)",
                p.boot_grace,
                unready.join("; ")
            ));
        }
        Apiserver::Up { unready, gone } => {
            let also = if unready.is_empty() {
                String::new()
            } else {
                format!(" (also not Ready, with pods: {})", unready.join("; "))
            };
            return Decision::Recover {
                via: Via::Apiserver,
                why: format!(
                    "the api-server is up but after {:?} nothing runs of {}{also}",
                    p.boot_grace,
                    gone.join("; ")
                ),
            };
        }
        Apiserver::Denied(why) if in_grace => {
            return Decision::Wait(format!(
                "the api-server refuses kubeboot's credentials: {why}"
            ));
        }
        // Not a control plane that is gone: a recovery would write the same
        // credentials into the bootstrap pods and `start` would wait on the same
        // refusal.
        Apiserver::Denied(why) => {
            return Decision::Misconfigured(format!(
                "the api-server is up but refuses the credentials of --kubeconfig after {:?} ({why}): a configuration error (the kubeconfig's user or its RBAC), not an api-server that is down; nothing was recovered",
                p.boot_grace
            ));
        }
        Apiserver::Down(why) => why,
    };
    if in_grace {
        return Decision::Wait(format!("the api-server is not ready yet: {down}"));
    }
    let etcd_why = match &o.etcd {
        Some(Ok(())) => {
            return Decision::Recover {
                via: Via::Etcd,
                why: format!("the api-server is down ({down}); etcd is alive"),
            };
        }
        Some(Err(e)) => format!("etcd is down too ({e})"),
        None => "no etcd endpoints are configured".to_string(),
    };
    if let Ok(b) = &o.backup
        && !b.self_hosted_etcd
    {
        return Decision::NoSource(format!(
            "the api-server is down ({down}) and {etcd_why}; backup {} is of an external etcd, which kubeboot cannot restore: bring etcd back (etcdutl snapshot restore), then run kubeboot ensure again",
            b.snapshot.display()
        ));
    }
    let Some(local) = &o.local else {
        return Decision::Wait(format!(
            "the api-server is down ({down}) and {etcd_why}; reading the local etcd data dir before any restore"
        ));
    };
    let evidence = local.describe();
    let backup = o.backup.as_ref().ok();
    if let LocalState::Intact { revision } = local.state
        && backup.is_none_or(|b| revision >= b.revision)
    {
        return on_newest_local(o, p, down, &etcd_why, local, revision);
    }
    let Some(b) = backup else {
        let none = o.backup.as_ref().err().map_or("", String::as_str);
        return Decision::NoSource(format!(
            "the api-server is down ({down}), {etcd_why}, {evidence}, and no backup: {none}"
        ));
    };
    let over = match &local.state {
        LocalState::Intact { .. } => format!("{evidence}, older than the backup"),
        LocalState::Missing | LocalState::Unreadable(_) => evidence,
    };
    if let Some(why) = o.marker.as_ref().and_then(|m| super::marker::forbids(m, b)) {
        return Decision::Refused(format!(
            "the api-server is down ({down}) and {etcd_why}; {over}; but {why}; nothing was restored"
        ));
    }
    if !p.backup_restore_allowed {
        return Decision::Refused(format!(
            "the api-server is down ({down}) and {etcd_why}; {over}; backup {} (revision {}) could restore the self-hosted etcd, but this node may not restore backups (--allow-backup-restore or --backup-restore-node)",
            b.snapshot.display(),
            b.revision
        ));
    }
    Decision::Recover {
        via: Via::Backup(b.clone()),
        why: format!(
            "the api-server is down ({down}) and {etcd_why}; {over}: restoring backup revision {}",
            b.revision
        ),
    }
}

/// The local data dir is intact and no backup is newer: it is the newest past there
/// is, so it is never replaced. It is started (`Via::Local`) when nothing else on this
/// node will start it and policy lets this node recover without etcd's lock; else
/// `ensure` waits for etcd to come up on it.
fn on_newest_local(
    o: &Observation,
    p: &Policy,
    down: &str,
    etcd_why: &str,
    local: &LocalData,
    revision: i64,
) -> Decision {
    let evidence = local.describe();
    let newest = match &o.backup {
        Ok(b) => format!(
            "{evidence}, not older than the newest backup {} (revision {}): it is not replaced",
            b.snapshot.display(),
            b.revision
        ),
        Err(_) => format!("{evidence}, and there is no whole backup: it is not replaced"),
    };
    if let Some(pod) = &local.etcd_pod {
        return Decision::Wait(format!(
            "the api-server is down ({down}) and {etcd_why}; {newest}; the static pod {pod} on this node runs etcd on it: waiting for etcd to come up"
        ));
    }
    if !p.backup_restore_allowed {
        return Decision::Wait(format!(
            "the api-server is down ({down}) and {etcd_why}; {newest}; waiting for etcd to come up on it (this node may not start it without etcd's recovery lock: --allow-backup-restore or --backup-restore-node)"
        ));
    }
    Decision::Recover {
        via: Via::Local {
            dir: local.dir.clone(),
            revision,
        },
        why: format!(
            "the api-server is down ({down}) and {etcd_why}; {newest}; no static pod on this node runs etcd: starting etcd on it as it is"
        ),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
