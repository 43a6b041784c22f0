//! What `ensure --dry-run -o json` prints: the decision, why, and the evidence it
//! rests on, in a shape scripts can rely on (documented in docs/ensure.md; the
//! field names are a stable interface: add fields, never rename or remove them).

use serde::Serialize;

use super::decide::{Apiserver, Decision, Kubelet, LocalState, Observation, Policy};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// healthy | wait | recover | unhealthy | refused | no-source | failed | misconfigured
    pub decision: &'static str,
    /// apiserver | etcd | backup | local, for `recover`.
    pub via: Option<&'static str>,
    pub reason: String,
    /// The status a real run would exit with on this decision.
    pub exit_code: i32,
    pub evidence: Evidence,
    pub policy: PolicyReport,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Evidence {
    pub kubelet: State,
    pub apiserver: ApiserverReport,
    pub etcd: State,
    pub local_data: LocalReport,
    pub backup: BackupReport,
    /// The last backup restore this node knows of (null: none).
    pub restore_marker: Option<super::marker::Marker>,
}

/// A probe's state word and its detail (null when there is nothing to say).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct State {
    pub state: &'static str,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiserverReport {
    /// up | down | denied
    pub state: &'static str,
    pub detail: Option<String>,
    pub unready: Vec<String>,
    pub gone: Vec<String>,
    /// The api-server's clock minus this node's, from its `Date` header.
    pub clock_offset_seconds: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LocalReport {
    pub dir: Option<String>,
    /// missing | unreadable | intact | not-read
    pub state: &'static str,
    pub revision: Option<i64>,
    pub detail: Option<String>,
    /// A static pod on this node that runs etcd on the data dir (its file).
    pub etcd_static_pod: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackupReport {
    /// found | none
    pub state: &'static str,
    pub snapshot: Option<String>,
    pub revision: Option<i64>,
    pub self_hosted_etcd: Option<bool>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyReport {
    pub boot_grace_seconds: u64,
    pub elapsed_seconds: u64,
    pub backup_restore_allowed: bool,
}

/// The report of `decision`, taken on `o` (whose kubelet is `kubelet`: a dry run
/// decides as if it were up, and shows what it really is).
pub fn build(
    o: &Observation,
    kubelet: &Kubelet,
    clock_offset: Option<i64>,
    p: &Policy,
    decision: &Decision,
) -> Report {
    let word = decision.word();
    let (via, reason, exit_code) = match decision {
        Decision::Healthy => (None, "control plane healthy".to_string(), 0),
        Decision::Wait(w) => (None, w.clone(), 0),
        Decision::Recover { via, why } => (Some(via.word()), why.clone(), 0),
        Decision::Unhealthy(w) => (None, w.clone(), 6),
        Decision::Refused(w) => (None, w.clone(), 4),
        Decision::NoSource(w) => (None, w.clone(), 3),
        Decision::Failed(w) => (None, w.clone(), 1),
        Decision::Misconfigured(w) => (None, w.clone(), 2),
    };
    let some = |s: &str| Some(s.to_string());
    let kubelet = match kubelet {
        Kubelet::Healthy => State {
            state: "healthy",
            detail: None,
        },
        Kubelet::Down(w) => State {
            state: "down",
            detail: some(w),
        },
        Kubelet::Failed(w) => State {
            state: "failed",
            detail: some(w),
        },
    };
    let apiserver = match &o.apiserver {
        Apiserver::Down(w) => ("down", some(w), vec![], vec![]),
        Apiserver::Denied(w) => ("denied", some(w), vec![], vec![]),
        Apiserver::Up { unready, gone } => ("up", None, unready.clone(), gone.clone()),
    };
    let etcd = match &o.etcd {
        None => State {
            state: "not-configured",
            detail: None,
        },
        Some(Ok(())) => State {
            state: "up",
            detail: None,
        },
        Some(Err(w)) => State {
            state: "down",
            detail: some(w),
        },
    };
    let local_data = match &o.local {
        None => LocalReport {
            dir: None,
            state: "not-read",
            revision: None,
            detail: None,
            etcd_static_pod: None,
        },
        Some(l) => {
            let (state, revision, detail) = match &l.state {
                LocalState::Missing => ("missing", None, None),
                LocalState::Unreadable(w) => ("unreadable", None, some(w)),
                LocalState::Intact { revision } => ("intact", Some(*revision), None),
            };
            LocalReport {
                dir: Some(l.dir.display().to_string()),
                state,
                revision,
                detail,
                etcd_static_pod: l.etcd_pod.clone(),
            }
        }
    };
    let backup = match &o.backup {
        Ok(b) => BackupReport {
            state: "found",
            snapshot: Some(b.snapshot.display().to_string()),
            revision: Some(b.revision),
            self_hosted_etcd: Some(b.self_hosted_etcd),
            detail: b.from.as_ref().map(|url| format!("downloaded from {url}")),
        },
        Err(w) => BackupReport {
            state: "none",
            snapshot: None,
            revision: None,
            self_hosted_etcd: None,
            detail: some(w),
        },
    };
    Report {
        decision: word,
        via,
        reason,
        exit_code,
        evidence: Evidence {
            kubelet,
            apiserver: ApiserverReport {
                state: apiserver.0,
                detail: apiserver.1,
                unready: apiserver.2,
                gone: apiserver.3,
                clock_offset_seconds: clock_offset,
            },
            etcd,
            local_data,
            backup,
            restore_marker: o.marker.clone(),
        },
        policy: PolicyReport {
            boot_grace_seconds: p.boot_grace.as_secs(),
            elapsed_seconds: o.elapsed.as_secs(),
            backup_restore_allowed: p.backup_restore_allowed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensure::decide::{Backup, LocalData, Via};
    use serde_json::json;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn the_json_shape_is_the_documented_one() {
        let o = Observation {
            elapsed: Duration::from_secs(301),
            kubelet: Kubelet::Healthy,
            apiserver: Apiserver::Down("refused".into()),
            etcd: Some(Err("etcd down".into())),
            backup: Ok(Backup {
                snapshot: PathBuf::from("/b/r9/snapshot.db"),
                revision: 9,
                self_hosted_etcd: true,
                from: None,
            }),
            local: Some(LocalData {
                dir: PathBuf::from("/var/lib/etcd"),
                state: LocalState::Intact { revision: 7 },
                etcd_pod: None,
            }),
            marker: None,
        };
        let p = Policy {
            boot_grace: Duration::from_secs(300),
            backup_restore_allowed: true,
        };
        let d = Decision::Recover {
            via: Via::Backup(Backup {
                snapshot: PathBuf::from("/b/r9/snapshot.db"),
                revision: 9,
                self_hosted_etcd: true,
                from: None,
            }),
            why: "restoring backup revision 9".into(),
        };
        let r = build(&o, &Kubelet::Down("no healthz".into()), None, &p, &d);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "decision": "recover",
                "via": "backup",
                "reason": "restoring backup revision 9",
                "exit_code": 0,
                "evidence": {
                    "kubelet": {"state": "down", "detail": "no healthz"},
                    "apiserver": {"state": "down", "detail": "refused", "unready": [], "gone": [],
                                  "clock_offset_seconds": null},
                    "etcd": {"state": "down", "detail": "etcd down"},
                    "local_data": {"dir": "/var/lib/etcd", "state": "intact", "revision": 7, "detail": null,
                                   "etcd_static_pod": null},
                    "backup": {"state": "found", "snapshot": "/b/r9/snapshot.db", "revision": 9,
                               "self_hosted_etcd": true, "detail": null},
                    "restore_marker": null
                },
                "policy": {"boot_grace_seconds": 300, "elapsed_seconds": 301, "backup_restore_allowed": true}
            })
        );
        let r = build(
            &o,
            &Kubelet::Healthy,
            Some(-300),
            &p,
            &Decision::Unhealthy("x".into()),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["decision"], "unhealthy");
        assert_eq!(v["exit_code"], 6);
        assert_eq!(v["evidence"]["apiserver"]["clock_offset_seconds"], -300);
    }
}
