//! One endpoint's view of its cluster, for `decide`: cluster ID, members, revision, and
//! kubeboot's record of a restore (a key in the restored data itself, so every member
//! and every later reader sees it, with no file on any one disk).

use etcd_client::Client;
use serde::{Deserialize, Serialize};

use super::decide::{ClusterView, MemberView, Restored};
use crate::source::etcd::{EtcdConfig, connect};

/// The key a restore writes into the cluster it makes.
pub const RESTORED_KEY: &str = "/kubeboot/restored";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoredRecord {
    pub node: String,
    pub backup_revision: i64,
    pub restored_at: String,
}

/// Asks `cfg`'s single endpoint; `Err` is why it does not answer, one line.
pub async fn probe(cfg: &EtcdConfig) -> Result<ClusterView, String> {
    let endpoint = cfg.endpoints.join(",");
    let mut client = connect(cfg).await.map_err(|e| e.to_string())?;
    let timed = |what: &'static str| {
        let endpoint = endpoint.clone();
        move |_| format!("{endpoint}: {what} timed out")
    };
    let status = tokio::time::timeout(cfg.request_timeout, client.status())
        .await
        .map_err(timed("status"))?
        .map_err(|e| format!("{}: status: {e}", cfg.endpoints.join(",")))?;
    let header = status
        .header()
        .ok_or_else(|| format!("{}: status has no header", cfg.endpoints.join(",")))?;
    let (cluster_id, revision) = (header.cluster_id(), header.revision());
    let members = tokio::time::timeout(cfg.request_timeout, client.member_list())
        .await
        .map_err(timed("member list"))?
        .map_err(|e| format!("{}: member list: {e}", cfg.endpoints.join(",")))?;
    let restored = restored(&mut client, cfg).await?;
    Ok(ClusterView {
        endpoint: cfg.endpoints.join(","),
        cluster_id,
        members: members
            .members()
            .iter()
            .map(|m| MemberView {
                id: m.id(),
                name: m.name().to_string(),
                peer_urls: m.peer_urls().to_vec(),
            })
            .collect(),
        revision,
        restored,
    })
}

async fn restored(client: &mut Client, cfg: &EtcdConfig) -> Result<Option<Restored>, String> {
    let endpoint = cfg.endpoints.join(",");
    let resp = tokio::time::timeout(cfg.request_timeout, client.get(RESTORED_KEY, None))
        .await
        .map_err(|_| format!("{endpoint}: reading {RESTORED_KEY} timed out"))?
        .map_err(|e| format!("{endpoint}: reading {RESTORED_KEY}: {e}"))?;
    let Some(kv) = resp.kvs().first() else {
        return Ok(None);
    };
    let r: RestoredRecord = serde_json::from_slice(kv.value())
        .map_err(|e| format!("{endpoint}: {RESTORED_KEY} is not kubeboot's record: {e}"))?;
    Ok(Some(Restored {
        node: r.node,
        backup_revision: r.backup_revision,
    }))
}
