//! What `ensure` does about a host-run etcd cluster (an `etcd.service` on each master),
//! from what it sees. Pure: the probes and the data dir are read by the caller, which
//! runs this again after every step it takes.
//!
//! The rules, most important first:
//! - Never replace data that may be the newest past there is: an intact local data dir
//!   at or above the newest backup is waited for, never moved; a cluster that answers at
//!   or above it is joined, never restored over.
//! - One past. Clusters that answer with different cluster IDs are ranked: a cluster
//!   older than the backup (a new empty cluster formed over lost data dirs) always
//!   yields; an original cluster at or above the backup beats a restore (the restore
//!   would be the older past); between restores, the one whose restorer's name sorts
//!   first wins. Every member of a losing cluster yields to the winner (its data is moved
//!   aside, and it joins as a new member). Two original clusters are a split brain that
//!   no rule may settle: refused.
//! - Only the node the policy names restores; the others wait for its cluster and join.
//!
//! Two masters that restore at the same moment (a wrong policy) each make a one-member
//! cluster; each then sees the other's, and the rule between restores leaves one past.
//! A member of the winner waits while another cluster still answers, so nothing is read
//! from etcd (by `ensure`'s recovery or an api-server) while two pasts are reachable.

use super::member::Member;
use crate::ensure::evidence::LocalState;

/// One member as a cluster lists it; an empty `name` is a member added but not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// What one endpoint that answered said about its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub endpoint: String,
    pub cluster_id: u64,
    pub members: Vec<MemberView>,
    pub revision: i64,
    /// Who made this cluster from a backup, and from which (kubeboot's key in it).
    pub restored: Option<Restored>,
}

/// A cluster made by a restore: its revision was moved on past the backup's, so only
/// the backup's revision says how new its content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub node: String,
    pub backup_revision: i64,
}

impl ClusterView {
    /// How new the content is: the backup's revision for a restore.
    fn content_revision(&self) -> i64 {
        self.restored
            .as_ref()
            .map_or(self.revision, |r| r.backup_revision)
    }
}

/// Everything the decision reads.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub me: &'a Member,
    /// This member's own client URL.
    pub local: Result<ClusterView, String>,
    /// The other members' client URLs that answered (the rest are down).
    pub peers: Vec<ClusterView>,
    pub data: LocalState,
    pub backup_revision: Option<i64>,
    pub may_restore: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// This member serves in the one cluster there is.
    Healthy(String),
    /// Nothing to do yet; why.
    Wait(String),
    /// Move this member's data aside and join the cluster at `endpoint` as a new member,
    /// first removing `replace` (this member's old entry) if set.
    Join {
        endpoint: String,
        replace: Option<u64>,
        why: String,
    },
    /// Restore the newest backup here as a new one-member cluster.
    Restore(String),
    /// Something no rule may settle; nothing is touched.
    Refuse(String),
    /// No cluster, no data, no backup.
    NoSource(String),
}

/// The ranking described in the module doc; `None` for a cluster that always yields.
fn rank(c: &ClusterView, backup: Option<i64>) -> Option<(bool, std::cmp::Reverse<&str>)> {
    match &c.restored {
        Some(r) => Some((false, std::cmp::Reverse(r.node.as_str()))),
        None if backup.is_none_or(|b| c.revision >= b) => Some((true, std::cmp::Reverse(""))),
        None => None,
    }
}

fn describe(c: &ClusterView) -> String {
    let how = c.restored.as_ref().map_or(String::new(), |r| {
        format!(
            ", restored by {} from backup revision {}",
            r.node, r.backup_revision
        )
    });
    format!(
        "cluster {:x} at {} (revision {}, {} members{how})",
        c.cluster_id,
        c.endpoint,
        c.revision,
        c.members.len()
    )
}

/// The decision; see the module doc.
pub fn decide(o: &Observed) -> Action {
    let mut clusters: Vec<&ClusterView> = Vec::new();
    for c in o.local.iter().chain(o.peers.iter()) {
        if !clusters.iter().any(|k| k.cluster_id == c.cluster_id) {
            clusters.push(c);
        }
    }
    let backup = o.backup_revision;
    let mut ranked: Vec<_> = clusters
        .iter()
        .filter_map(|c| rank(c, backup).map(|r| (r, *c)))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0));
    if let [(top, w), (next, n), ..] = ranked.as_slice()
        && top == next
    {
        return Action::Refuse(format!(
            "two etcd clusters answer and neither may yield: {} and {}; a split brain to settle by hand, nothing was moved",
            describe(w),
            describe(n)
        ));
    }
    let Some((_, winner)) = ranked.first() else {
        return no_current_cluster(o, &clusters);
    };
    with_winner(o, winner, clusters.len())
}

fn with_winner(o: &Observed, w: &ClusterView, count: usize) -> Action {
    let others = if count > 1 {
        format!("; {} other cluster(s) answer and yield to it", count - 1)
    } else {
        String::new()
    };
    // By name, or by peer URL for an entry added by a join that never started.
    let me = w
        .members
        .iter()
        .find(|m| m.name == o.me.name || m.peer_urls.contains(&o.me.peer_url));
    match &o.local {
        // Others still answer: until their members have joined, a read through every
        // member's URL (the recovery's, the api-server's) could meet the other past.
        Ok(l) if l.cluster_id == w.cluster_id && count > 1 => Action::Wait(format!(
            "etcd member {} serves in {}{others}: waiting for their members to join it before anything is read from etcd",
            o.me.name,
            describe(w)
        )),
        Ok(l) if l.cluster_id == w.cluster_id => Action::Healthy(format!(
            "etcd member {} serves in {}",
            o.me.name,
            describe(w)
        )),
        Ok(l) => Action::Join {
            endpoint: w.endpoint.clone(),
            replace: None,
            why: format!(
                "this member serves in {}, which yields to {}",
                describe(l),
                describe(w)
            ),
        },
        Err(down) => match (&o.data, me) {
            (LocalState::Intact { .. }, Some(_)) => Action::Wait(format!(
                "etcd member {} of {} is down ({down}) with its data intact; its unit brings it back",
                o.me.name,
                describe(w)
            )),
            (LocalState::Intact { revision }, None) if *revision > w.content_revision() => {
                Action::Refuse(format!(
                    "the local etcd data in {} (revision {revision}) is newer than {}: joining would move it aside; nothing was moved",
                    o.me.data_dir.display(),
                    describe(w)
                ))
            }
            (data, me) => Action::Join {
                endpoint: w.endpoint.clone(),
                replace: me.map(|m| m.id),
                why: format!(
                    "etcd member {} is down ({down}), its local data is {}; {} serves{others}",
                    o.me.name,
                    state(data),
                    describe(w)
                ),
            },
        },
    }
}

fn state(s: &LocalState) -> String {
    match s {
        LocalState::Missing => "missing".into(),
        LocalState::Unreadable(why) => format!("unreadable ({why})"),
        LocalState::Intact { revision } => format!("at revision {revision}"),
    }
}

/// No cluster at or above the backup answers (none at all, or only ones older).
fn no_current_cluster(o: &Observed, old: &[&ClusterView]) -> Action {
    let seen = if old.is_empty() {
        "no etcd member answers".to_string()
    } else {
        let list: Vec<String> = old.iter().map(|c| describe(c)).collect();
        format!(
            "only clusters older than the newest backup answer: {}",
            list.join("; ")
        )
    };
    let Some(b) = o.backup_revision else {
        return match o.data {
            LocalState::Intact { .. } => Action::Wait(format!(
                "{seen}; the local etcd data is intact and there is no backup: waiting for a quorum of members"
            )),
            _ => Action::NoSource(format!(
                "{seen}, the local etcd data is {}, and there is no backup",
                state(&o.data)
            )),
        };
    };
    if let LocalState::Intact { revision } = o.data
        && revision >= b
    {
        return Action::Wait(format!(
            "{seen}; the local etcd data is intact at revision {revision}, not older than the newest backup (revision {b}): waiting for a quorum of members, never restoring over it"
        ));
    }
    if !o.may_restore {
        return Action::Wait(format!(
            "{seen}; the local etcd data is {}: waiting for the master the policy names to restore backup revision {b}",
            state(&o.data)
        ));
    }
    Action::Restore(format!(
        "{seen}; the local etcd data is {}: restoring backup revision {b} as a new one-member cluster",
        state(&o.data)
    ))
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
