//! `ensure` with a host-run etcd cluster (`--etcd-unit`): once the api-server is down past
//! the boot grace, the member on this master is looked after first, before anything is
//! read from etcd (even when etcd answers: it may be the wrong one of two pasts)
//! ([`crate::hostetcd`]): waited for, restored from the newest backup as a new
//! one-member cluster (on the node the policy names), or joined to the cluster there is.
//! Then etcd answers and the usual decision recovers the control plane from it.

use crate::hostetcd::act::{self, HostEtcd, SystemdUnit};
use crate::hostetcd::decide::{Action, decide};
use crate::start::progress::Progress;

use super::decide::{Backup, Decision, Via};
use super::{EnsureError, Options, lock, recovery};

/// What the step came to.
pub enum Step {
    /// Nothing final yet (waited): probe again.
    Again,
    /// This member serves in the one cluster there is, and etcd answers: the usual
    /// decision goes on from here.
    Proceed,
    /// This member was restored or joined: probe again, and give the control plane a
    /// new boot grace on the changed etcd (the step may have taken most of the old one,
    /// with no look at the components in between).
    Acted,
    /// `--dry-run`: what would be done.
    DryRun(Decision),
}

/// One round of the host-etcd step; see the module doc.
pub async fn step(
    opts: &Options,
    h: &HostEtcd,
    backup: &Result<Backup, String>,
    etcd_answers: bool,
    progress: &mut Progress,
) -> Result<Step, EnsureError> {
    let seen = act::observe(h).await;
    let b = backup.as_ref().ok();
    let action =
        decide(&seen.observed(h, b.map(|b| b.revision), opts.policy.backup_restore_allowed));
    let (line, dry) = match &action {
        Action::Healthy(_) if etcd_answers => return Ok(Step::Proceed),
        Action::Healthy(w) => {
            progress.waiting(&format!("{w}; waiting for etcd to answer ensure's probe"));
            return Ok(Step::Again);
        }
        Action::Wait(w) => {
            progress.waiting(w);
            return Ok(Step::Again);
        }
        Action::Refuse(w) => return Err(EnsureError::Refused(w.clone())),
        Action::NoSource(w) => return Err(EnsureError::NoSource(w.clone())),
        Action::Restore(why) => {
            let Some(b) = b else {
                return Err(EnsureError::NoSource(why.clone()));
            };
            let d = Decision::Recover {
                via: Via::Backup(b.clone()),
                why: format!("etcd: {why}"),
            };
            (format!("etcd: {why}"), d)
        }
        Action::Join { why, endpoint, .. } => (
            format!("etcd: {why}: joining the cluster at {endpoint}"),
            Decision::Recover {
                via: Via::Etcd,
                why: format!("etcd: {why}: this member would join the cluster at {endpoint}"),
            },
        ),
    };
    if opts.dry_run {
        return Ok(Step::DryRun(dry));
    }
    progress.step(&line);
    let conn = crate::systemd::dbus::connect(opts.systemd_bus.as_deref())
        .await
        .map_err(EnsureError::Failed)?;
    let unit = SystemdUnit {
        conn,
        name: h.unit.clone(),
        timeout: h.timeout,
        poll: opts.poll,
    };
    let done = match action {
        Action::Restore(_) => {
            let Some(b) = b else {
                return Ok(Step::Again);
            };
            let plain =
                recovery::decrypt_backup(&b.snapshot, opts.identity.as_ref(), &opts.recovery_root)
                    .map_err(|e| *e)?;
            let snapshot = plain.as_ref().map_or(b.snapshot.as_path(), |p| p.path());
            act::restore(h, &unit, &seen, snapshot, b.revision, &opts.node_name).await
        }
        Action::Join {
            endpoint, replace, ..
        } => {
            // One member joins at a time: etcd itself refuses a second `member add`
            // while the first has not started (its strict reconfiguration check), and
            // the member lock says who is joining. Not guarded: adding a second member to a
            // one-member cluster stops its quorum until the new member starts, so the
            // lease cannot be renewed in between, and stopping the join there would
            // leave the cluster without quorum.
            let cfg = crate::source::etcd::EtcdConfig {
                endpoints: vec![endpoint.clone()],
                ..h.client.clone()
            };
            let holder = format!("{} joining etcd", opts.node_name);
            match lock::acquire_key(&cfg, lock::MEMBER_KEY, &holder, opts.lock_ttl).await {
                Ok(lock::Acquired::Held(held)) => {
                    let r = act::join(h, &unit, &seen, &endpoint, replace).await;
                    held.release().await;
                    r
                }
                Ok(lock::Acquired::Busy(who)) => {
                    progress.waiting(&format!(
                        "etcd: another member is changing the cluster ({who})"
                    ));
                    return Ok(Step::Again);
                }
                Err(e) => Err(e),
            }
        }
        _ => return Ok(Step::Again),
    };
    match done {
        Ok(line) => {
            progress.step(&line);
            Ok(Step::Acted)
        }
        Err(e) if e.contains("changed since the decision") => Err(EnsureError::Changed(e)),
        Err(e) => Err(EnsureError::Failed(e)),
    }
}
