//! One recovery per cluster: a key in etcd, held with a lease, so that masters booting
//! together after a power cut do not all recover and `start` at once. The first takes
//! the key; the others see who holds it and wait, and find the control plane healthy
//! once the holder is done. A holder that dies mid-recovery loses the key when its
//! lease runs out (`ttl`), and the next master takes over.
//!
//! The key lives outside the api-server's prefix, so the api-server never sees it;
//! the lock file on each node (`start.lock`) still keeps one recovery per node.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::task::JoinHandle;

use crate::source::error_chain;
use crate::source::etcd::{self, EtcdConfig};

/// The lock's key in etcd.
pub const KEY: &str = "/kubeboot/recovery-lock";

/// The lock, held until [`Held::release`] or drop (then the lease expires).
pub struct Held {
    client: Client,
    lease: i64,
    keeper: JoinHandle<()>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held").field("lease", &self.lease).finish()
    }
}

/// What an attempt found.
#[derive(Debug)]
pub enum Acquired {
    Held(Box<Held>),
    /// Someone else holds it; the holder's own description.
    Busy(String),
}

fn err(cfg: &EtcdConfig, e: &etcd_client::Error) -> String {
    format!(
        "etcd {}: recovery lock: {}",
        cfg.endpoints.join(","),
        error_chain(e)
    )
}

/// Takes the lock for `holder` (e.g. "master-1 since 2026-11-26T03:00:00Z") with a
/// lease of `ttl`, kept alive in the background while held.
pub async fn acquire(cfg: &EtcdConfig, holder: &str, ttl: Duration) -> Result<Acquired, String> {
    let mut client = etcd::connect(cfg).await.map_err(|e| e.to_string())?;
    let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(60);
    let lease = client
        .lease_grant(secs, None)
        .await
        .map_err(|e| err(cfg, &e))?
        .id();
    let txn = Txn::new()
        .when([Compare::create_revision(KEY, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            KEY,
            holder,
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(KEY, None)]);
    let resp = client.txn(txn).await.map_err(|e| err(cfg, &e))?;
    if !resp.succeeded() {
        let _ = client.lease_revoke(lease).await;
        let holder = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            })
            .unwrap_or_else(|| "another master".into());
        return Ok(Acquired::Busy(holder));
    }
    let (mut keeper, mut responses) = client
        .lease_keep_alive(lease)
        .await
        .map_err(|e| err(cfg, &e))?;
    let every =
        Duration::from_secs(u64::try_from(secs).unwrap_or(60) / 3).max(Duration::from_millis(500));
    let keeper = tokio::spawn(async move {
        loop {
            if keeper.keep_alive().await.is_err() || responses.message().await.is_err() {
                tracing::warn!(
                    "the recovery lock's lease could not be renewed; it expires unless renewed"
                );
            }
            tokio::time::sleep(every).await;
        }
    });
    Ok(Acquired::Held(Box::new(Held {
        client,
        lease,
        keeper,
    })))
}

impl Held {
    /// Gives the lock back at once (the key goes with the lease).
    pub async fn release(mut self) {
        self.keeper.abort();
        if let Err(e) = self.client.lease_revoke(self.lease).await {
            tracing::warn!(
                "releasing the recovery lock: {}; it expires with its lease",
                error_chain(&e)
            );
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}
