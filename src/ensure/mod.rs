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
pub mod lock;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::assets;
use crate::encryption::EncryptionConfig;
use crate::fsutil::{self, FsError};
use crate::health;
use crate::kubeclient::{self, ClientError};
use crate::recover::{self, RecoverError, Request, Source};
use crate::render::RenderOptions;
use crate::source::etcd::EtcdConfig;
use crate::start::observe::{Required, Rules};
use crate::start::progress::Progress;
use crate::start::{self, StartError, StartOptions, Summary};
use components::ReadyTracker;
use decide::{Apiserver, Decision, Kubelet, Observation, Policy, Via};

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
    pub etcd: Option<EtcdConfig>,
    pub etcd_prefix: String,
    pub encryption: Option<EncryptionConfig>,
    pub backup_dir: PathBuf,
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
    pub render: RenderOptions,
    /// `start`'s options; `asset_dir` is filled in per recovery.
    pub start: StartOptions,
    /// Decide, print, change nothing.
    pub dry_run: bool,
    /// Names this node in the cluster-wide recovery lock.
    pub node_name: String,
    /// How long the recovery lock outlives a holder that died.
    pub lock_ttl: Duration,
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

/// Probes until the decision is final, then acts on it.
pub async fn run(opts: &Options, progress: &mut Progress) -> Result<Outcome, EnsureError> {
    let mut began = Instant::now();
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
    let mut skew_said = false;
    let mut clock_offset = None;
    let mut backup = None;
    let mut local = None;
    let (via, why, lock) = loop {
        let elapsed = began.elapsed();
        let past_grace = elapsed >= opts.policy.boot_grace;
        let kubelet_seen =
            health::kubelet_health(&opts.kubelet_healthz, opts.request_timeout, systemd).await;
        // A dry run reports what would be decided on everything else whatever the
        // kubelet does (its state is in the report).
        let kubelet = if opts.dry_run {
            Kubelet::Healthy
        } else {
            kubelet_seen.clone()
        };
        let apiserver = match &client {
            Some((c, endpoint)) => {
                let (a, offset) =
                    health::apiserver(c, &opts.required, &opts.rules, &mut tracker).await;
                clock_offset = offset.map(|o| o.as_secs()).or(clock_offset);
                if let Some(line) = offset.and_then(clock::describe).filter(|_| !skew_said) {
                    skew_said = true;
                    tracing::warn!("{line}");
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
            (Some(cfg), true) => Some(health::etcd(cfg, &opts.etcd_prefix).await),
            (Some(_), false) => Some(Err(NOT_PROBED.into())),
            (None, _) => None,
        };
        let etcd_down = !matches!(etcd, Some(Ok(())));
        if down && past_grace && etcd_down && backup.is_none() {
            backup = Some(health::newest_backup(&opts.backup_dir));
            local = Some(evidence::read(&opts.etcd_data_dir));
        }
        let obs = Observation {
            elapsed,
            kubelet,
            apiserver,
            etcd,
            backup: backup
                .clone()
                .unwrap_or_else(|| Err("not looked for yet".into())),
            local: local.clone(),
        };
        let decision = decide::decide(&obs, &opts.policy);
        if opts.dry_run && !matches!(decision, Decision::Wait(_)) {
            if decision == Decision::Healthy {
                progress.step("control plane healthy: the api-server is ready and every required component is Ready");
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
                progress.step("control plane healthy: the api-server is ready and every required component is Ready");
                return Ok(Outcome::Healthy);
            }
            // The live line carries the elapsed time; the text stays the same while
            // nothing changes, so the log gets one line per change.
            Decision::Wait(why) => {
                progress.waiting(&format!("{why} (boot grace {:?})", opts.policy.boot_grace))
            }
            Decision::Recover { via, why } => match cluster_lock(opts, &via).await {
                Ok(held) => break (via, why, held),
                Err(busy) => {
                    // Another master is recovering: once it is done, its control plane
                    // gets a whole boot grace to become healthy before this one judges
                    // it, so a result still settling is not recovered a second time.
                    began = Instant::now();
                    progress.waiting(&busy);
                }
            },
            Decision::Unhealthy(why) => return Err(EnsureError::Unhealthy(why)),
            Decision::Refused(why) => return Err(EnsureError::Refused(why)),
            Decision::NoSource(why) => return Err(EnsureError::NoSource(why)),
            Decision::Failed(why) => return Err(EnsureError::Failed(why)),
            Decision::Misconfigured(why) => return Err(EnsureError::Config(why)),
        }
        tokio::time::sleep(opts.poll).await;
    };
    progress.step(&format!("recovering: {why}"));
    let work = recover_and_start(opts, &via, local.as_ref(), progress);
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
    Ok(Outcome::Recovered {
        via,
        asset_dir,
        summary,
    })
}

/// A dry run's evidence made whole: what the decision did not need to probe (etcd,
/// the backups, the local data dir) is read now, read-only, for the report.
async fn complete(opts: &Options, mut obs: Observation) -> Observation {
    if let (Some(cfg), Some(Err(e))) = (&opts.etcd, &obs.etcd)
        && e == NOT_PROBED
    {
        obs.etcd = Some(health::etcd(cfg, &opts.etcd_prefix).await);
    }
    if obs.local.is_none() {
        obs.local = Some(evidence::read(&opts.etcd_data_dir));
        obs.backup = health::newest_backup(&opts.backup_dir);
    }
    obs
}

/// Takes the cluster-wide recovery lock when etcd is there to hold it (`Ok(None)`
/// when it is not: a backup restore, which policy limits to one node anyway).
/// `Err` says who holds it.
async fn cluster_lock(opts: &Options, via: &Via) -> Result<Option<lock::Held>, String> {
    let Some(cfg) = opts
        .etcd
        .as_ref()
        .filter(|_| !matches!(via, Via::Backup(_)))
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

async fn recover_and_start(
    opts: &Options,
    via: &Via,
    local: Option<&evidence::LocalData>,
    progress: &mut Progress,
) -> Result<(PathBuf, Summary), EnsureError> {
    let asset_dir = recover_into(opts, via).await?;
    if let Via::Backup(b) = via {
        // The recovery took time; the evidence must still hold before `start` moves
        // the data dir aside.
        recheck(opts, b.revision, local).await?;
    }
    progress.step(&format!(
        "starting the control plane from {}",
        asset_dir.display()
    ));
    let start_opts = StartOptions {
        asset_dir: asset_dir.clone(),
        ..opts.start.clone()
    };
    let summary = start::run(&start_opts, progress)
        .await
        .map_err(|error| EnsureError::Start {
            dir: asset_dir.display().to_string(),
            error,
        })?;
    Ok((asset_dir, summary))
}

/// Probes etcd and reads the local data dir again; `Err` when either differs from
/// what the restore was decided on.
async fn recheck(
    opts: &Options,
    revision: i64,
    decided_on: Option<&evidence::LocalData>,
) -> Result<(), EnsureError> {
    let abort = |what: String| {
        EnsureError::Changed(format!(
            "backup restore (revision {revision}) aborted before anything was moved: {what}; run kubeboot ensure again to decide anew"
        ))
    };
    let etcd_answers = match &opts.etcd {
        Some(cfg) => health::etcd(cfg, &opts.etcd_prefix)
            .await
            .is_ok()
            .then(|| cfg.endpoints.join(",")),
        None => None,
    };
    let now = evidence::read(&opts.etcd_data_dir);
    match evidence::changed(decided_on, &now, etcd_answers.as_deref()) {
        Some(what) => Err(abort(what)),
        None => Ok(()),
    }
}

/// Recovers from `via` into a new dir under the recovery root.
async fn recover_into(opts: &Options, via: &Via) -> Result<PathBuf, EnsureError> {
    let source = match via {
        Via::Apiserver => Source::Apiserver {
            kubeconfig: opts.kubeconfig.clone(),
            request_timeout: opts.request_timeout,
        },
        Via::Etcd => match &opts.etcd {
            Some(cfg) => Source::Etcd(cfg.clone()),
            None => return Err(EnsureError::Failed("etcd chosen but not configured".into())),
        },
        Via::Backup(b) => Source::Snapshot {
            file: b.snapshot.clone(),
            skip_hash_check: false,
        },
    };
    let kind = source.kind();
    let kubeconfig = std::fs::read(&opts.kubeconfig)
        .map_err(FsError::io("read kubeconfig", &opts.kubeconfig))?;
    let req = Request {
        source,
        etcd_prefix: opts.etcd_prefix.clone(),
        kubeconfig: Some(kubeconfig),
        encryption: opts.encryption.as_ref(),
        render: opts.render.clone(),
        // Unattended: a field the descriptors cannot read is a warning in kubeboot.json and the
        // journal, not a reason to leave the control plane down.
        strict: false,
    };
    let recovered = recover::recover(&req)
        .await
        .map_err(|error| EnsureError::Recover { via: kind, error })?;
    fsutil::create_dir_all_with_mode(&opts.recovery_root, 0o700)?;
    let dir = opts
        .recovery_root
        .join(format!("{}-{kind}", fsutil::timestamp_suffix()));
    assets::write(&dir, &recovered.assets, false).map_err(|e| {
        EnsureError::Failed(format!(
            "writing the recovered assets to {}: {e}",
            dir.display()
        ))
    })?;
    for line in recovered.summary(&dir) {
        tracing::info!("{line}");
    }
    Ok(dir)
}
