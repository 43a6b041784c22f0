//! A member of a host-run etcd cluster that rejoins the cluster there is, with a fresh
//! data dir, as etcd's runtime reconfiguration documents: `member add`, then the member
//! starts with `--initial-cluster` naming every member and `--initial-cluster-state
//! existing`.
//!
//! How those two settings reach the unit: an extra EnvironmentFile, named by a drop-in
//! under `/run` (gone at the next boot). systemd reads EnvironmentFiles in order and a
//! later one overrides an earlier, and both override `Environment=`, so a drop-in's
//! `Environment=` would lose to the operator's `/etc/default/etcd`; a later
//! EnvironmentFile wins. etcd reads them only to make a new data dir, so once the member
//! has started they are inert, and the caller removes them.

use super::member::Member;
use crate::source::etcd::{EtcdConfig, connect};

/// What the member starts with to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinPlan {
    pub cluster_id: u64,
    /// `--initial-cluster`: every member, this one included.
    pub initial_cluster: String,
}

/// Adds `m` to the cluster at `cfg` (first removing `replace`, this member's old entry,
/// unless it is an entry for this member that was added and never started: then it is
/// reused, as etcd refuses a second entry with the same peer URL).
pub async fn add_member(
    cfg: &EtcdConfig,
    m: &Member,
    replace: Option<u64>,
) -> Result<JoinPlan, String> {
    let at = cfg.endpoints.join(",");
    let mut client = connect(cfg).await.map_err(|e| e.to_string())?;
    let list = client
        .member_list()
        .await
        .map_err(|e| format!("{at}: member list: {e}"))?;
    let unstarted_me = list
        .members()
        .iter()
        .find(|x| x.name().is_empty() && x.peer_urls().contains(&m.peer_url))
        .map(|x| x.id());
    if let Some(old) = replace.filter(|id| Some(*id) != unstarted_me) {
        client
            .member_remove(old)
            .await
            .map_err(|e| format!("{at}: removing this member's old entry {old:x}: {e}"))?;
    }
    let (new_id, members) = match unstarted_me {
        Some(id) => {
            let list = client
                .member_list()
                .await
                .map_err(|e| format!("{at}: member list: {e}"))?;
            (id, list.members().to_vec())
        }
        None => {
            let added = client
                .member_add([m.peer_url.as_str()], None)
                .await
                .map_err(|e| format!("{at}: adding member {} at {}: {e}", m.name, m.peer_url))?;
            let id = added.member().map(|x| x.id()).unwrap_or_default();
            (id, added.member_list().to_vec())
        }
    };
    let status = client
        .status()
        .await
        .map_err(|e| format!("{at}: status: {e}"))?;
    let cluster_id = status.header().map_or(0, |h| h.cluster_id());
    let mut entries = Vec::new();
    for x in &members {
        let name = if x.id() == new_id {
            m.name.as_str()
        } else {
            x.name()
        };
        for u in x.peer_urls() {
            entries.push(format!("{name}={u}"));
        }
    }
    Ok(JoinPlan {
        cluster_id,
        initial_cluster: entries.join(","),
    })
}

/// The EnvironmentFile the joining member starts with.
pub fn join_env(plan: &JoinPlan) -> String {
    format!(
        "# kubeboot ensure: this etcd member joins cluster {:x} with a fresh data dir.\n\
         # etcd reads these only to make a new data dir; kubeboot removes this file once\n\
         # the member has started.\n\
         ETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_CLUSTER_STATE=existing\n",
        plan.cluster_id, plan.initial_cluster
    )
}

/// The drop-in that names it, after the unit's own EnvironmentFile(s).
pub fn drop_in(env_file: &std::path::Path) -> String {
    format!(
        "# kubeboot ensure: the etcd member's join settings (see {}).\n[Service]\nEnvironmentFile={}\n",
        env_file.display(),
        env_file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_settings_parse_back_as_an_environment_file() {
        let plan = JoinPlan {
            cluster_id: 0xabc,
            initial_cluster: "m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380".into(),
        };
        let env = super::super::member::parse_env_file(&join_env(&plan)).unwrap();
        assert_eq!(env["ETCD_INITIAL_CLUSTER"], plan.initial_cluster);
        assert_eq!(env["ETCD_INITIAL_CLUSTER_STATE"], "existing");
        let d = drop_in(std::path::Path::new("/run/kubeboot/etcd-join.env"));
        assert!(d.contains("[Service]\nEnvironmentFile=/run/kubeboot/etcd-join.env\n"));
    }
}
