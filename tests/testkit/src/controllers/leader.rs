//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `tools/leaderelection` does it, so that of several controller-managers (or
//! schedulers) only one acts, and another takes over when it dies. Used by both doubles:
//! [`run_elected`] runs the work only while this process holds the lease.
//!
//! *Expected flow.* Every `retry_period` the candidate reads the Lease and [`decide`]s:
//! create it if missing; take it over if its holder is empty or has not renewed it for
//! `leaseDurationSeconds` as measured by this process's own clock since it last saw the
//! record change (client-go's `observedTime`, immune to clock skew); otherwise wait. The
//! leader renews every `retry_period`; if no renewal has succeeded for `renew_deadline`
//! it has lost the lease and [`run_elected`] returns [`Lost`]; the binaries then exit 1,
//! as the real components do (`leaderelection lost`), and their supervisor restarts them.
//!
//! *Guarantees.* Writes are replaces carrying the resourceVersion that was read, so of
//! two candidates racing for an expired lease exactly one succeeds (the other gets a
//! 409). Since `renew_deadline < lease_duration`, a leader that cannot renew stops
//! before anyone else may take over.
//!
//! *Caveats.* Neither double releases the lease on shutdown (`ReleaseOnCancel` off, as
//! in kube-controller-manager), so a successor waits out the lease; an api-server outage
//! longer than `renew_deadline` ends the leader (exactly as for the real components).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

use super::client::ErrorLog;
use super::config::LeaderFlags;

/// Which lease, who we are, and the timings.
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub timing: LeaderFlags,
}

/// `<hostname>_<random uuid>`, the real components' holder identity.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default().to_string();
    format!(
        "{host}_{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

/// Returned by [`run_elected`] when the lease could not be renewed in time.
#[derive(Debug)]
pub struct Lost {
    pub lease: String,
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "leaderelection lost: could not renew lease {}",
            self.lease
        )
    }
}

impl std::error::Error for Lost {}

/// What to do with the lease after reading it.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Step {
    Create(LeaseSpec),
    Update(LeaseSpec),
    /// Someone else holds a live lease.
    Wait,
}

/// client-go's `tryAcquireOrRenew`, without I/O. `observed_at` is when this process
/// last saw `current` change; `now`/`wall` are the monotonic and wall clocks.
pub fn decide(
    e: &Election,
    current: Option<&LeaseSpec>,
    observed_at: Instant,
    now: Instant,
    wall: jiff::Timestamp,
) -> Step {
    let secs = i32::try_from(e.timing.lease_duration.as_secs())
        .unwrap_or(i32::MAX)
        .max(1);
    let mine = |acquired: Option<MicroTime>, transitions: i32| LeaseSpec {
        holder_identity: Some(e.identity.clone()),
        lease_duration_seconds: Some(secs),
        acquire_time: acquired.or(Some(MicroTime(wall))),
        renew_time: Some(MicroTime(wall)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(cur) = current else {
        return Step::Create(mine(None, 0));
    };
    let holder = cur.holder_identity.as_deref().unwrap_or("");
    let transitions = cur.lease_transitions.unwrap_or(0);
    if holder == e.identity {
        return Step::Update(mine(cur.acquire_time.clone(), transitions));
    }
    let duration =
        Duration::from_secs(u64::try_from(cur.lease_duration_seconds.unwrap_or(secs)).unwrap_or(0));
    if !holder.is_empty() && observed_at + duration > now {
        return Step::Wait;
    }
    Step::Update(mine(None, transitions + 1))
}

/// Reads and writes the Lease; remembers what it saw and when.
struct Candidate {
    api: Api<Lease>,
    e: Election,
    seen: Option<LeaseSpec>,
    observed_at: Instant,
}

fn conflict<T>(r: kube::Result<T>) -> kube::Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

impl Candidate {
    /// One `tryAcquireOrRenew`: whether we hold the lease afterwards.
    async fn attempt(&mut self) -> Result<bool> {
        let lease = self
            .api
            .get_opt(&self.e.name)
            .await
            .context("reading the lease")?;
        let spec = lease.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let now = Instant::now();
        if spec != self.seen {
            self.seen.clone_from(&spec);
            self.observed_at = now;
        }
        let step = decide(
            &self.e,
            spec.as_ref(),
            self.observed_at,
            now,
            jiff::Timestamp::now(),
        );
        let (won, written) = match (step, lease) {
            (Step::Wait, _) => return Ok(false),
            (Step::Create(spec), _) => {
                let l = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.e.name.clone()),
                        namespace: Some(self.e.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec.clone()),
                };
                (
                    conflict(self.api.create(&PostParams::default(), &l).await),
                    spec,
                )
            }
            (Step::Update(spec), Some(mut l)) => {
                l.spec = Some(spec.clone());
                (
                    conflict(
                        self.api
                            .replace(&self.e.name, &PostParams::default(), &l)
                            .await,
                    ),
                    spec,
                )
            }
            (Step::Update(_), None) => return Ok(false),
        };
        let won = won.context("writing the lease")?;
        if won {
            self.seen = Some(written);
            self.observed_at = Instant::now();
        }
        Ok(won)
    }

    /// An attempt bounded by the renew deadline (a hung request is a failed one).
    async fn bounded(&mut self) -> Result<bool> {
        let limit = self.e.timing.renew_deadline.max(Duration::from_millis(100));
        tokio::time::timeout(limit, self.attempt())
            .await
            .unwrap_or_else(|_| Ok(false))
    }
}

/// client-go's `JitterUntil` factor for acquisition retries.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(1.0 + rand::random_range(0.0..1.2))
}

/// Waits for the lease, then runs `work` while renewing it. Returns `work`'s result, or
/// [`Lost`] once renewals have failed for `renew_deadline` (dropping `work`).
pub async fn run_elected<F>(
    client: Client,
    e: Election,
    component: &'static str,
    work: F,
) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    let lease = format!("{}/{}", e.namespace, e.name);
    let timing = e.timing.clone();
    let mut c = Candidate {
        api: Api::namespaced(client, &e.namespace),
        seen: None,
        observed_at: Instant::now(),
        e,
    };
    let mut log = ErrorLog::new(component);
    crate::note!(
        "{component}: attempting to acquire leader lease {lease} as {}",
        c.e.identity
    );
    loop {
        match c.bounded().await {
            Ok(true) => break,
            Ok(false) => log.record("leader election", &Ok(())),
            Err(err) => log.record("leader election", &Err(err)),
        }
        tokio::time::sleep(jittered(timing.retry_period)).await;
    }
    crate::note!("{component}: successfully acquired lease {lease}");
    let renew = async {
        let mut last = Instant::now();
        loop {
            tokio::time::sleep(timing.retry_period).await;
            match c.bounded().await {
                Ok(true) => {
                    last = Instant::now();
                    log.record("renewing the lease", &Ok(()));
                }
                Ok(false) => {}
                Err(err) => log.record("renewing the lease", &Err(err)),
            }
            if last.elapsed() >= timing.renew_deadline {
                return Lost {
                    lease: lease.clone(),
                };
            }
        }
    };
    tokio::select! {
        r = work => r,
        lost = renew => Err(lost.into()),
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;

/// A component's whole life, as kube-controller-manager and kube-scheduler both run:
/// connect, serve `/healthz`, then run `work` (under the `kube-system/<lease>` Lease
/// when leader election is on) until `shutdown` (`Ok`) or a lost lease (`Err`).
pub async fn run_component<W, Fut>(
    cfg: super::Config,
    component: &'static str,
    lease: &str,
    work: W,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()>
where
    W: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let client = super::client::connect(cfg.kubeconfig.as_deref()).await?;
    super::health::serve(
        component,
        cfg.bind_address,
        cfg.secure_port,
        cfg.permit_port_sharing,
    )
    .await?;
    let work = work(client.clone());
    let elected = async {
        if !cfg.leader.enabled {
            return work.await;
        }
        let e = Election {
            namespace: "kube-system".into(),
            name: lease.into(),
            identity: identity(),
            timing: cfg.leader.clone(),
        };
        run_elected(client, e, component, work).await
    };
    tokio::select! {
        r = elected => r,
        () = shutdown => Ok(()),
    }
}
