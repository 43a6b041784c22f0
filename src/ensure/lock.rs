//! One recovery per cluster: a key in etcd, held with a lease, so that masters booting
//! together after a power cut do not all recover and `start` at once. The first takes
//! the key; the others see who holds it and wait, and find the control plane healthy
//! once the holder is done. A holder that dies mid-recovery loses the key when its
//! lease runs out (`ttl`), and the next master takes over.
//!
//! The key lives outside the api-server's prefix, so the api-server never sees it;
//! the lock file on each node (`start.lock`) still keeps one recovery per node.
//!
//! A lock only helps while its holder knows it holds it. Each renewal of the lease
//! therefore runs under a timeout shorter than what is left of the TTL (a half-open
//! connection cannot hang it), and once renewals have failed for so long that the
//! lease could expire before the next one (see [`step`]), the holder declares the
//! lock lost: [`Held::guard`] stops the recovery it guards, well before another master
//! can take the key (issue 11, finding 5).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::source::error_chain;
use crate::source::etcd::{self, EtcdConfig};

/// The lock's key in etcd.
pub const KEY: &str = "/kubeboot/recovery-lock";
/// The lock a host-run etcd member takes to join a cluster (one member change at a
/// time). Not [`KEY`]: the master that restored etcd holds that one while it recovers
/// the control plane, and that recovery needs the other members joined (the api-server
/// is given every member's URL), so one lock for both would make each wait on the other.
pub const MEMBER_KEY: &str = "/kubeboot/etcd-member-lock";

/// The lock, held until [`Held::release`] or drop (then the lease expires).
pub struct Held {
    client: Client,
    lease: i64,
    keeper: JoinHandle<()>,
    /// Why the lock was lost, once it was.
    lost: watch::Receiver<Option<String>>,
    /// When the last renewal that succeeded was sent (the lease lives at least `ttl`
    /// from then).
    renewed: Arc<Mutex<Instant>>,
}

/// What the keeper does next, `since_ok` after the last renewal that succeeded was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Renew, giving up on this attempt after `timeout`.
    Renew { timeout: Duration },
    /// The lease could expire before another renewal is sure to land: the lock is lost.
    Lost,
}

/// The renewal rule. A third of the TTL is kept as a margin: once less than that is
/// left, the lock is lost (the recovery is stopped with a third of the TTL to spare
/// before any other master can take the key). An attempt never runs into the margin.
pub fn step(ttl: Duration, since_ok: Duration) -> Step {
    let margin = ttl / 3;
    match ttl.checked_sub(since_ok) {
        Some(left) if left > margin => Step::Renew {
            timeout: (left - margin).min(ttl / 3).max(Duration::from_millis(1)),
        },
        _ => Step::Lost,
    }
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

fn err(cfg: &EtcdConfig, key: &str, e: &etcd_client::Error) -> String {
    format!(
        "etcd {}: lock {key}: {}",
        cfg.endpoints.join(","),
        error_chain(e)
    )
}

/// Who holds the recovery lock now (its own description), if anyone; read only.
pub async fn holder(cfg: &EtcdConfig) -> Result<Option<String>, String> {
    let mut client = etcd::connect(cfg).await.map_err(|e| e.to_string())?;
    let resp = client.get(KEY, None).await.map_err(|e| err(cfg, KEY, &e))?;
    Ok(resp
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
}

/// Takes the lock for `holder` (e.g. "master-1 since 2026-11-26T03:00:00Z") with a
/// lease of `ttl`, kept alive in the background while held.
pub async fn acquire(cfg: &EtcdConfig, holder: &str, ttl: Duration) -> Result<Acquired, String> {
    acquire_key(cfg, KEY, holder, ttl).await
}

/// [`acquire`] of the lock at `key`.
pub async fn acquire_key(
    cfg: &EtcdConfig,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Acquired, String> {
    let mut client = etcd::connect(cfg).await.map_err(|e| e.to_string())?;
    let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(60);
    let ttl = Duration::from_secs(u64::try_from(secs).unwrap_or(60));
    // The lease lives at least `ttl` from when it was asked for.
    let granted_at = Instant::now();
    let lease = client
        .lease_grant(secs, None)
        .await
        .map_err(|e| err(cfg, key, &e))?
        .id();
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            holder,
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(key, None)]);
    let resp = client.txn(txn).await.map_err(|e| err(cfg, key, &e))?;
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
    let (lost_tx, lost) = watch::channel(None);
    let renewed = Arc::new(Mutex::new(granted_at));
    let keeper = tokio::spawn(keep(
        client.clone(),
        lease,
        ttl,
        Arc::clone(&renewed),
        lost_tx,
    ));
    Ok(Acquired::Held(Box::new(Held {
        client,
        lease,
        keeper,
        lost,
        renewed,
    })))
}

/// Keeps the lease alive every third of its TTL, each attempt bounded by [`step`];
/// sends why once the lock is lost, and stops.
async fn keep(
    mut client: Client,
    lease: i64,
    ttl: Duration,
    renewed: Arc<Mutex<Instant>>,
    lost: watch::Sender<Option<String>>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut last_error = String::from("no renewal yet");
    let mut wait = every;
    loop {
        tokio::time::sleep(wait).await;
        let last_ok = renewed
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|p| *p.into_inner());
        let timeout = match step(ttl, last_ok.elapsed()) {
            Step::Renew { timeout } => timeout,
            Step::Lost => {
                let why = format!(
                    "the recovery lock's lease was not renewed for {:.1?} of its {ttl:?} ({last_error}); it may expire and another master take the lock, so this recovery stops here",
                    last_ok.elapsed()
                );
                tracing::error!("{why}");
                let _ = lost.send(Some(why));
                return;
            }
        };
        let sent = Instant::now();
        match tokio::time::timeout(timeout, renew(&mut client, &mut stream, lease)).await {
            Ok(Ok(granted)) if granted > 0 => {
                if let Ok(mut t) = renewed.lock() {
                    *t = sent;
                }
                wait = every;
                continue;
            }
            Ok(Ok(_)) => last_error = "etcd says the lease has expired".into(),
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = format!("no answer from etcd within {timeout:?}"),
        }
        tracing::warn!("renewing the recovery lock's lease: {last_error}; trying again");
        // A stream that failed or hung is not used again.
        stream = None;
        wait = Duration::from_millis(100);
    }
}

/// One keep-alive on `stream` (opened first when there is none): the TTL etcd granted
/// (0: the lease is gone).
async fn renew(
    client: &mut Client,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    lease: i64,
) -> Result<i64, String> {
    let (keeper, responses) = match stream {
        Some(s) => s,
        None => stream.insert(
            client
                .lease_keep_alive(lease)
                .await
                .map_err(|e| error_chain(&e))?,
        ),
    };
    keeper.keep_alive().await.map_err(|e| error_chain(&e))?;
    match responses.message().await.map_err(|e| error_chain(&e))? {
        Some(r) => Ok(r.ttl()),
        None => Err("etcd closed the keep-alive stream".into()),
    }
}

impl Held {
    /// When the last successful renewal was sent: the lease lives at least its TTL
    /// from then.
    pub fn last_renewed(&self) -> Instant {
        self.renewed
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|p| *p.into_inner())
    }

    /// Runs `work` while the lock is held: `Err(why)` as soon as the lock is lost,
    /// dropping `work` (so it stops at its next await point).
    pub async fn guard<F: Future>(&mut self, work: F) -> Result<F::Output, String> {
        let mut lost = self.lost.clone();
        tokio::select! {
            out = work => Ok(out),
            why = lost.wait_for(Option::is_some) => Err(match why {
                Ok(w) => w.clone().unwrap_or_default(),
                Err(_) => "the recovery lock's keeper stopped".into(),
            }),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[test]
    fn each_renewal_ends_before_the_margin_and_the_lock_is_lost_before_the_ttl() {
        assert_eq!(
            step(TTL, Duration::from_secs(10)),
            Step::Renew {
                timeout: Duration::from_secs(10)
            }
        );
        // Failed renewals: each later attempt gets what is left above the margin.
        assert_eq!(
            step(TTL, Duration::from_secs(15)),
            Step::Renew {
                timeout: Duration::from_secs(5)
            }
        );
        // A third of the TTL left: lost, 10 s before any other master could take the key.
        assert_eq!(step(TTL, Duration::from_secs(20)), Step::Lost);
        assert_eq!(step(TTL, Duration::from_secs(31)), Step::Lost);
        // Whatever the time since the last renewal, an attempt never outlasts the margin.
        for ms in (0..30_000).step_by(250) {
            let since = Duration::from_millis(ms);
            if let Step::Renew { timeout } = step(TTL, since) {
                assert!(since + timeout <= TTL - TTL / 3, "{since:?} + {timeout:?}");
            }
        }
    }
}
