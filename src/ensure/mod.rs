//! `kubeboot ensure`: the boot oneshot. Probe, [`decide`], and when the control plane
//! is gone, recover it from the best source still alive and `start` it — the
//! `recover` + `start` an operator would run at 3 a.m., run by the node itself.
//!
//! Probing is lazy along the fallback chain: etcd is asked only once the api-server
//! is down past the boot grace, and the backups (whose check hashes every file) only
//! once etcd is down too, and then once, with the local etcd data dir.
//!
//! A backup restore rests on evidence gathered before it (etcd silent, the local data
//! missing, unreadable or older); by the time `start` would move the data dir aside,
//! that can have changed (etcd came up by itself). So right before `start`, etcd is
//! probed and the data dir read again, and any change aborts the restore.

pub mod clock;
pub mod components;
pub mod decide;
pub mod evidence;
pub mod grace;
mod host;
pub mod lock;
pub mod marker;
mod recovery;
pub mod remote;
pub mod report;
pub mod retention;
pub mod witness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backup::crypt::Identity;
use crate::encryption::EncryptionConfig;
use crate::fsutil::FsError;
use crate::health;
use crate::kubeclient::{self, ClientError};
use crate::recover::RecoverError;
use crate::render::RenderOptions;
use crate::source::etcd::EtcdConfig;
use crate::start::observe::{Required, Rules};
use crate::start::progress::Progress;
use crate::start::{StartError, StartOptions, Summary};
use crate::systemd::logfields::Fields;
use components::ReadyTracker;
use decide::{Apiserver, Decision, Kubelet, Observation, Policy, Via};
use grace::Grace;

/// etcd's state while the api-server is not (yet) known to be down.
const NOT_PROBED: &str = "not probed yet";

/// Everything one `ensure` run needs.
#[derive(Debug)]
pub struct Options {
    /// Reaches the api-server for the health check and the api-server source, and is
    /// copied into the recovered asset dir for `start`.
    pub kubeconfig: PathBuf,
    pub kubelet_healthz: String,
    /// The kubelet's systemd unit, asked about over D-Bus when its healthz fails.
    pub kubelet_unit: Option<String>,
    /// The D-Bus address of systemd (the system bus when `None`).
    pub systemd_bus: Option<String>,
    /// This node's container runtime (`--cri-socket`), which vouches for the statuses
    /// of the containers it runs ([`witness`]); `None`: every status settles.
    pub cri_socket: Option<PathBuf>,
    pub etcd: Option<EtcdConfig>,
    pub etcd_prefix: String,
    pub encryption: Option<EncryptionConfig>,
    pub backup_dir: PathBuf,
    /// The object store to restore from when no backup here is whole
    /// (`--backup-remote` with `--allow-remote-backup`; [`remote`]).
    pub remote_backups: Option<remote::RemoteBackups>,
    /// Opens encrypted backups (`--identity`): to check one whole before it is chosen,
    /// and to decrypt its snapshot for the restore.
    pub identity: Option<Identity>,
    /// The self-hosted etcd's data dir on this host, read (never written) before a
    /// backup may replace it.
    pub etcd_data_dir: PathBuf,
    pub policy: Policy,
    pub required: Vec<Required>,
    pub rules: Rules,
    pub poll: Duration,
    pub request_timeout: Duration,
    /// Recovered asset dirs go under here, one per recovery, and stay for the record.
    pub recovery_root: PathBuf,
    /// How many recovered asset dirs (they hold keys) to keep besides the one a run
    /// writes; older ones are removed ([`retention`]).
    pub keep_recoveries: usize,
    pub render: RenderOptions,
    /// `start`'s options; `asset_dir` is filled in per recovery.
    pub start: StartOptions,
    /// Decide, print, change nothing.
    pub dry_run: bool,
    /// Names this node in the cluster-wide recovery lock.
    pub node_name: String,
    /// How long the recovery lock outlives a holder that died.
    pub lock_ttl: Duration,
    /// The host-run etcd member on this master (`--etcd-unit`), looked after before
    /// the control plane is recovered from etcd.
    pub host_etcd: Option<crate::hostetcd::act::HostEtcd>,
}

/// What a run ended with.
#[derive(Debug)]
pub enum Outcome {
    Healthy,
    /// `--dry-run`: the final decision (never `Wait`) and its report.
    DryRun {
        decision: Decision,
        report: Box<report::Report>,
    },
    Recovered {
        via: Via,
        asset_dir: PathBuf,
        summary: Summary,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// The api-server runs every component but some stay un-Ready: reported, not
    /// recovered (exit 6).
    #[error("{0}")]
    Unhealthy(String),
    /// Policy forbids the only recovery possible (exit 4).
    #[error("{0}")]
    Refused(String),
    /// Nothing to recover from (exit 3).
    #[error("{0}")]
    NoSource(String),
    #[error("{0}")]
    Failed(String),
    /// What a backup restore was decided on changed before anything was moved (exit 5).
    #[error("{0}")]
    Changed(String),
    /// The cluster lock's lease could not be renewed in time; the recovery was
    /// stopped where it stood (exit 7).
    #[error("{0}")]
    LockLost(String),
    /// The api-server refuses ensure's credentials (exit 2).
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Kubeconfig(ClientError),
    #[error("recovery from {via}: {error}")]
    Recover {
        via: &'static str,
        error: RecoverError,
    },
    #[error("start of the recovered control plane in {dir}: {error}")]
    Start { dir: String, error: StartError },
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl EnsureError {
    /// The decision (in the words of `--dry-run -o json`'s `decision`) that `ensure`
    /// ended on, for the journal's `KUBEBOOT_DECISION` on its error line: the exit code's
    /// meaning. A recovery whose source proves unreadable ends on `no-source`.
    pub fn decision(&self) -> Option<&'static str> {
        match self {
            EnsureError::Unhealthy(_) => Some("unhealthy"),
            EnsureError::Refused(_) => Some("refused"),
            EnsureError::NoSource(_) => Some("no-source"),
            EnsureError::Failed(_) => Some("failed"),
            EnsureError::Config(_) => Some("misconfigured"),
            _ => None,
        }
    }
}

/// The healthy decision's line (drills and the runbook look for its start).
const HEALTHY: &str =
    "control plane healthy: the api-server is ready and every required component is Ready";

/// Probes until the decision is final, then acts on it.
pub async fn run(opts: &Options, progress: &mut Progress) -> Result<Outcome, EnsureError> {
    let run_started = jiff::Timestamp::now();
    if !opts.dry_run {
        match retention::tidy(&opts.recovery_root, opts.keep_recoveries) {
            Ok(removed) => recovery::say_removed(progress, &removed, opts.keep_recoveries),
            // Refused again, and then fatal, only if a recovery must write there.
            Err(e) => progress.warn(&format!("the recovery root: {e}")),
        }
    }
    let mut grace = Grace::new(Instant::now());
    let client = match kubeclient::from_kubeconfig(
        &opts.kubeconfig,
        opts.request_timeout,
        opts.request_timeout,
    )
    .await
    {
        Ok((client, endpoint)) => Some((client, endpoint)),
        Err(e @ ClientError::Config { .. }) => return Err(EnsureError::Kubeconfig(e)),
        // No client at all (e.g. an unparsable server URL) is an api-server that is down.
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    };
    let bus = match &opts.kubelet_unit {
        Some(_) => match crate::systemd::dbus::connect(opts.systemd_bus.as_deref()).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("{e}; the kubelet is judged by its healthz port alone");
                None
            }
        },
        None => None,
    };
    let systemd = bus.as_ref().zip(opts.kubelet_unit.as_deref());
    let mut tracker = ReadyTracker::default();
    let mut witness = opts
        .cri_socket
        .as_deref()
        .map(|s| health::Witness::new(s, &opts.node_name, opts.request_timeout));
    let mut skew_said = false;
    let mut clock_offset = None;
    let mut backup = None;
    // A backup downloaded from the store, kept until the run ends.
    let mut fetched = None;
    let mut local: Option<evidence::LocalData> = None;
    let marker_path = marker::local_path(&opts.recovery_root);
    let mut known_marker = marker::load(&marker_path);
    let mut marker_read = false;
    let (via, why, lock) = loop {
        let now = Instant::now();
        let kubelet_seen =
            health::kubelet_health(&opts.kubelet_healthz, opts.request_timeout, systemd).await;
        // A dry run reports what would be decided on everything else whatever the
        // kubelet does (its state is in the report).
        let kubelet = if opts.dry_run {
            Kubelet::Healthy
        } else {
            kubelet_seen.clone()
        };
        if let Some(line) = grace.kubelet(kubelet == Kubelet::Healthy, now) {
            progress.step(&line);
        }
        let past_grace = grace.elapsed(now) >= opts.policy.boot_grace;
        let apiserver = match &client {
            Some((c, endpoint)) => {
                let (a, offset) = health::apiserver(
                    c,
                    &opts.required,
                    &opts.rules,
                    &mut tracker,
                    witness.as_mut(),
                )
                .await;
                clock_offset = offset.map(|o| o.as_secs()).or(clock_offset);
                if let Some(line) = offset.and_then(clock::describe).filter(|_| !skew_said) {
                    skew_said = true;
                    tracing::warn!("{line}");
                }
                if matches!(a, Apiserver::Up { .. }) && !marker_read {
                    marker_read = true;
                    known_marker = keep_marker(opts, c, known_marker).await;
                }
                match a {
                    Apiserver::Down(why) => Apiserver::Down(format!("{endpoint}{why}")),
                    Apiserver::Denied(why) => Apiserver::Denied(format!("{endpoint}{why}")),
                    up => up,
                }
            }
            None => Apiserver::Down(format!("no client for {}", opts.kubeconfig.display())),
        };
        let down = matches!(apiserver, Apiserver::Down(_));
        let etcd = match (&opts.etcd, down && past_grace) {
            (Some(cfg), true) => Some(probe_etcd(opts, cfg).await),
            (Some(_), false) => Some(Err(NOT_PROBED.into())),
            (None, _) => None,
        };
        let answers = match &etcd {
            Some(Ok(())) => Some(true),
            Some(Err(e)) if e != NOT_PROBED => Some(false),
            _ => None,
        };
        if let Some(line) = grace.etcd(answers, now) {
            progress.step(&line);
        }
        let etcd_down = !matches!(etcd, Some(Ok(())));
        // With a host-run etcd, its members are looked after (host step below) whenever
        // the api-server is down, so the backup is wanted even while etcd answers.
        let host_step = down && past_grace && opts.host_etcd.is_some();
        if down && past_grace && (etcd_down || host_step) {
            match local.as_mut() {
                None => {
                    backup = Some(remote::newest_backup(opts, &mut fetched, progress).await);
                    local = Some(evidence::read(
                        &opts.etcd_data_dir,
                        &opts.start.pod_manifest_dir,
                    ));
                }
                // The db is read once (and again right before acting); a static pod
                // of etcd, cheap to look for, may appear any time (a late checkpoint).
                Some(l) => l.etcd_pod = evidence::etcd_static_pod(&opts.start.pod_manifest_dir),
            }
        }
        let obs = Observation {
            elapsed: grace.elapsed(now),
            kubelet,
            apiserver,
            etcd,
            backup: backup
                .clone()
                .unwrap_or_else(|| Err("not looked for yet".into())),
            local: local.clone(),
            marker: known_marker.clone(),
        };
        let host = opts.host_etcd.as_ref().filter(|_| host_step);
        let decision = match host {
            Some(h) => match host::step(opts, h, &obs.backup, !etcd_down, progress).await? {
                host::Step::Proceed => decide::decide(&obs, &opts.policy),
                host::Step::Again => {
                    tokio::time::sleep(opts.poll).await;
                    continue;
                }
                host::Step::Acted => {
                    grace.restart(Instant::now());
                    progress.step("etcd changed under this member: the control plane gets a new boot grace on it");
                    continue;
                }
                host::Step::DryRun(d) => d,
            },
            None => decide::decide(&obs, &opts.policy),
        };
        if opts.dry_run && !matches!(decision, Decision::Wait(_)) {
            if decision == Decision::Healthy {
                progress.step_with(Fields::decision(decision.word()), HEALTHY);
            }
            let obs = complete(opts, obs).await;
            let report = report::build(&obs, &kubelet_seen, clock_offset, &opts.policy, &decision);
            return Ok(Outcome::DryRun {
                decision,
                report: Box::new(report),
            });
        }
        match decision {
            Decision::Healthy => {
                progress.step_with(Fields::decision(decision.word()), HEALTHY);
                return Ok(Outcome::Healthy);
            }
            // The live line carries the elapsed time; the text stays the same while
            // nothing changes, so the log gets one line per change.
            Decision::Wait(why) => progress.waiting_with(
                Fields::decision("wait"),
                &format!("{why} (boot grace {:?})", opts.policy.boot_grace),
            ),
            Decision::Recover { via, why } => match cluster_lock(opts, &via).await {
                Ok(held) => break (via, why, held),
                Err(busy) => {
                    // Another master is recovering: once it is done, its control plane
                    // gets a whole boot grace to become healthy before this one judges
                    // it, so a result still settling is not recovered a second time.
                    grace.restart(Instant::now());
                    progress.waiting_with(Fields::decision("wait"), &busy);
                }
            },
            // A control plane that another master is recovering right now (its `start`
            // holds the lock) is not judged until that recovery ends: its pods' Ready
            // may be the one the restored data held.
            Decision::Unhealthy(why) => match recovering_elsewhere(opts).await {
                Some(other) => {
                    grace.restart(Instant::now());
                    progress.waiting_with(
                        Fields::decision("wait"),
                        &format!("another master is recovering the control plane ({other}); judging it once that ends"),
                    );
                }
                None => return Err(EnsureError::Unhealthy(why)),
            },
            Decision::Refused(why) => return Err(EnsureError::Refused(why)),
            Decision::NoSource(why) => return Err(EnsureError::NoSource(why)),
            Decision::Failed(why) => return Err(EnsureError::Failed(why)),
            Decision::Misconfigured(why) => return Err(EnsureError::Config(why)),
        }
        tokio::time::sleep(opts.poll).await;
    };
    progress.phase("recover");
    progress.step_with(
        Fields::decision("recover").with_source(via.word()),
        &format!("recovering: {why}"),
    );
    let work = recovery::recover_and_start(opts, &via, local.as_ref(), progress);
    let done = match lock {
        // The recovery runs only while this master knows it holds the lock.
        Some(mut held) => {
            let done = match held.guard(work).await {
                Ok(done) => done,
                Err(why) => Err(EnsureError::LockLost(why)),
            };
            held.release().await;
            done
        }
        None => work.await,
    };
    let (asset_dir, summary) = done?;
    if let Via::Backup(b) = &via {
        let c = client.as_ref().map(|(c, _)| c);
        recovery::leave_marker(opts, c, b.revision, run_started, progress).await?;
    }
    Ok(Outcome::Recovered {
        via,
        asset_dir,
        summary,
    })
}

/// Reads the restore marker from the api-server and keeps a newer one on this node's
/// disk; returns the marker known now.
async fn keep_marker(
    opts: &Options,
    client: &kube::Client,
    known: Option<marker::Marker>,
) -> Option<marker::Marker> {
    match marker::read(client).await {
        Ok(Some(m)) if Some(&m) != known.as_ref() => {
            tracing::info!("the cluster records {}", m.describe());
            if !opts.dry_run
                && let Err(e) = marker::save(&opts.recovery_root, &m)
            {
                tracing::warn!("keeping the restore marker on this node: {e}");
            }
            Some(m)
        }
        Ok(_) => known,
        Err(e) => {
            tracing::warn!("{e}");
            known
        }
    }
}

/// etcd's answer. With `--etcd-unit`, an etcd that answers but holds nothing under the
/// api-server's prefix counts as down: after every data dir was lost, the members'
/// units form a new, empty cluster at boot (their `ETCD_INITIAL_CLUSTER_STATE=new`),
/// and recovering "from" it finds nothing. The host step then ranks that cluster below
/// the backup, as `hostetcd::decide` does any cluster older than it.
async fn probe_etcd(opts: &Options, cfg: &crate::source::etcd::EtcdConfig) -> Result<(), String> {
    match health::etcd_keys(cfg, &opts.etcd_prefix).await? {
        0 if opts.host_etcd.is_some() => Err(format!(
            "etcd {}: answers, but holds nothing under {} (a cluster formed anew over lost data dirs?)",
            cfg.endpoints.join(","),
            opts.etcd_prefix
        )),
        _ => Ok(()),
    }
}

/// A dry run's evidence made whole: what the decision did not need to probe (etcd,
/// the backups, the local data dir) is read now, read-only, for the report.
async fn complete(opts: &Options, mut obs: Observation) -> Observation {
    if let (Some(cfg), Some(Err(e))) = (&opts.etcd, &obs.etcd)
        && e == NOT_PROBED
    {
        obs.etcd = Some(probe_etcd(opts, cfg).await);
    }
    if obs.local.is_none() {
        obs.local = Some(evidence::read(
            &opts.etcd_data_dir,
            &opts.start.pod_manifest_dir,
        ));
        obs.backup = health::newest_backup(&opts.backup_dir, opts.identity.as_ref());
    }
    obs
}

/// Who holds the recovery lock, if etcd says someone does.
async fn recovering_elsewhere(opts: &Options) -> Option<String> {
    lock::holder(opts.etcd.as_ref()?).await.ok().flatten()
}

/// Takes the cluster-wide recovery lock when etcd is there to hold it (`Ok(None)`
/// when it is not: a backup restore or the local data dir started, which policy
/// limits to one node).
/// `Err` says who holds it.
async fn cluster_lock(opts: &Options, via: &Via) -> Result<Option<lock::Held>, String> {
    let Some(cfg) = opts
        .etcd
        .as_ref()
        .filter(|_| matches!(via, Via::Apiserver | Via::Etcd))
    else {
        return Ok(None);
    };
    let holder = format!("{} since {}", opts.node_name, crate::source::now_rfc3339());
    match lock::acquire(cfg, &holder, opts.lock_ttl).await {
        Ok(lock::Acquired::Held(h)) => Ok(Some(*h)),
        Ok(lock::Acquired::Busy(other)) => Err(format!(
            "another master is recovering the control plane ({other}); waiting for it"
        )),
        Err(e) => Err(format!("cannot take the recovery lock: {e}; trying again")),
    }
}
