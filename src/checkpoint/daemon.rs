//! The checkpointer's loop: wait for the lock, then every `--interval` observe, decide
//! (`state::step`) and execute, until told to stop.
//!
//! Expected flow: the DaemonSet pod and its own checkpoint both run on a master (and the
//! systemd unit may too); each waits for one `flock`, and only the holder works, so the
//! others are ready standbys (`READY=1` is sent while waiting: a standby is what they
//! are meant to be). The holder sends `READY=1` after its first cycle, `STATUS=` with
//! what it holds after each, and `WATCHDOG=1` each cycle when systemd asks for it.
//!
//! Guarantees: an I/O error never ends the loop and never panics; each distinct message
//! is logged once, again only after `report::REPEAT` if it persists, and the api-server and
//! kubelet say when they come back. A failed save is retried next cycle. A stop request
//! is honoured between cycles, never in the middle of one; a cycle is bounded by the
//! request timeouts, and saves still pending after [`CYCLE_BUDGET`] wait for the next
//! cycle so the watchdog keeps being pinged.
//!
//! The one way it ends by itself: the api-server refusing its credential with 401 for
//! `--unauthorized-timeout` ([`super::unauthorized`]). It then releases the lock, waits
//! two intervals so that a standby polling for it gets it before a restart of this one
//! could, and returns [`DaemonError::GaveUp`] (exit 1).
//!
//! Caveats: a checkpoint is a static pod on this node only; the data of a removed
//! checkpoint is deleted right after its deactivation, while the kubelet may still be
//! stopping it (its bind mounts keep the old files).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

use super::execute::Executor;
use super::files::{self, Layout};
use super::materialize::Fetcher;
use super::observe;
use super::report::{Health, Once, done, done_word, status, what};
use super::runtime::{Source, WhatRuns};
use super::state::{self, Action, Active, OnDisk, Params, PodKey, State};
use super::unauthorized::{Answer, GiveUp, Refusals};
use crate::fsutil::{FsError, LockFile};
use crate::systemd;
use crate::systemd::logfields::{self, Fields};
use crate::systemd::watchdog;

/// After this long in one cycle, the remaining saves wait for the next cycle.
pub const CYCLE_BUDGET: Duration = Duration::from_secs(60);

/// Everything the loop needs, resolved.
#[derive(Debug)]
pub struct Options {
    pub node: String,
    /// The checkpointer's own parent pod; `None` when it is not a pod (the systemd unit).
    pub self_key: Option<PodKey>,
    /// Its namespace (or `kube-system`), for the API fallback.
    pub namespace: String,
    pub layout: Layout,
    pub grace: SignedDuration,
    pub refresh: SignedDuration,
    pub interval: Duration,
    pub lock_file: PathBuf,
    /// See [`Params::namespaces`]; empty for every namespace.
    pub namespaces: BTreeSet<String>,
    /// How long 401s may last before the lock is given up; zero: never.
    pub unauthorized_timeout: Duration,
}

/// Why the loop ended other than by a stop request.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The lock cannot be taken at all.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The api-server refused the credential for too long; the lock was released.
    #[error("{0}")]
    GaveUp(String),
}

/// Waits until `stop` says so or `d` passes; returns whether to stop.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

/// Takes the lock, waiting as a standby while another checkpointer holds it. `None`:
/// asked to stop first.
async fn lock(
    opts: &Options,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<LockFile>, FsError> {
    let mut waiting = false;
    loop {
        match LockFile::try_acquire(&opts.lock_file) {
            Ok(l) => {
                if waiting {
                    tracing::info!("took over the lock {}", opts.lock_file.display());
                }
                return Ok(Some(l));
            }
            Err(FsError::Locked { .. }) if !waiting => {
                waiting = true;
                let msg = format!(
                    "standby: another checkpointer holds {}; waiting for it",
                    opts.lock_file.display()
                );
                tracing::info!("{msg}");
                systemd::notify(&format!("READY=1\nSTATUS={msg}"));
            }
            Err(FsError::Locked { .. }) => {}
            Err(e) => return Err(e),
        }
        watchdog();
        if pause(stop, opts.interval).await {
            return Ok(None);
        }
    }
}

/// Runs until `stop` turns true. Errors when the lock cannot be taken at all, or once
/// it was given up on a persistent 401.
pub async fn run(
    opts: Options,
    client: kube::Client,
    runs: WhatRuns,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let Some(held) = lock(&opts, &mut stop).await? else {
        return Ok(());
    };
    let mut log = Once::default();
    for dir in [opts.layout.saved_dir(), opts.layout.active_dir.clone()] {
        for p in files::remove_own_temps(&dir) {
            log.warn(&p);
        }
    }
    let params = Params {
        self_key: opts.self_key.clone().unwrap_or_else(observe::no_self_key),
        grace: opts.grace,
        refresh: opts.refresh,
        checkpoint_root: opts.layout.host_checkpoint_dir.clone(),
        namespaces: opts.namespaces.clone(),
    };
    let mut cycle = Cycle {
        opts: &opts,
        params,
        client,
        runs,
        state: State::default(),
        log,
        exec: Executor {
            layout: opts.layout.clone(),
            as_root: running_as_root(),
            fetcher: Fetcher::new(&opts.node),
        },
        api: Health::default(),
        runtime_health: Health::default(),
        cri_health: Health::default(),
        failed: BTreeMap::new(),
        refusals: Refusals::default(),
        gave_up: None,
    };
    let mut ready = false;
    loop {
        let status = cycle.run().await;
        let mut msg = format!("STATUS={status}");
        if !ready {
            tracing::info!("first cycle done: {status}");
            msg.push_str("\nREADY=1");
            ready = true;
        }
        systemd::notify(&msg);
        watchdog();
        if let Some((g, last)) = cycle.gave_up.take() {
            return Err(give_up(&opts, held, &g, &last, &mut stop).await);
        }
        if pause(&mut stop, opts.interval).await {
            break;
        }
    }
    systemd::notify("STOPPING=1");
    tracing::info!("stopped");
    Ok(())
}

/// Says why, releases the lock, and gives a standby two intervals to take it before
/// this process exits (and may be restarted and race it for the lock).
async fn give_up(
    opts: &Options,
    held: LockFile,
    g: &GiveUp,
    last: &str,
    stop: &mut watch::Receiver<bool>,
) -> DaemonError {
    let line = format!(
        "the api-server has refused this checkpointer's credential with 401 Unauthorized for {} s ({} polls in a row; last: {last}): releasing the lock {} so that a checkpointer with a valid credential takes over, and exiting to be restarted with a fresh one (--unauthorized-timeout {} s)",
        g.lasted.as_secs(),
        g.polls,
        opts.lock_file.display(),
        opts.unauthorized_timeout.as_secs()
    );
    tracing::error!("{line}");
    systemd::notify("STATUS=gave up the lock: the api-server answers 401 Unauthorized");
    drop(held);
    pause(stop, opts.interval.saturating_mul(2)).await;
    DaemonError::GaveUp(format!(
        "gave up the lock {} after {} s of 401 Unauthorized from the api-server",
        opts.lock_file.display(),
        g.lasted.as_secs()
    ))
}

/// Whether this process may chown (effective uid 0, as `/proc/self` is owned).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

struct Cycle<'a> {
    opts: &'a Options,
    params: Params,
    client: kube::Client,
    runs: WhatRuns,
    state: State,
    log: Once,
    exec: Executor,
    api: Health,
    /// Whether what runs here is known (from the CRI socket or the kubelet).
    runtime_health: Health,
    /// Whether the CRI socket answers, when one is configured.
    cri_health: Health,
    /// The last failure of an action per checkpoint, forgotten when one succeeds.
    failed: BTreeMap<PodKey, String>,
    /// The current run of 401s from the api-server.
    refusals: Refusals,
    /// Set when the 401s lasted too long, with the last one's message.
    gave_up: Option<(GiveUp, String)>,
}

impl Cycle<'_> {
    /// One observe → step → execute; returns the status line.
    async fn run(&mut self) -> String {
        let started = Instant::now();
        let view = match files::read_disk(&self.opts.layout) {
            Ok(v) => v,
            Err(e) => {
                self.log.warn(&format!(
                    "cannot read the checkpoints, deciding nothing: {e}"
                ));
                return format!("cannot read the checkpoints: {e}");
            }
        };
        for p in &view.problems {
            self.log.warn(p);
        }
        let seen = self.runs.observe().await;
        if let Ok(s) = &seen {
            let cri = match (&s.source, &s.cri_error) {
                (Source::Cri, _) => Ok(()),
                (Source::Kubelet, Some(e)) => Err(format!("{e}; asking the kubelet instead")),
                (Source::Kubelet, None) => Ok(()),
            };
            if self.runs.cri.is_some() {
                self.cri_health.note(
                    "the CRI socket",
                    cri.as_ref().map(|_| ()).map_err(String::as_str),
                    &mut self.log,
                );
            }
        }
        self.runtime_health.note(
            "the CRI socket or the kubelet",
            seen.as_ref().map(|_| ()).map_err(String::as_str),
            &mut self.log,
        );
        let (running, kubelet) = match seen {
            Ok(s) => (Some(s.running), s.kubelet),
            Err(_) => (None, None),
        };
        let namespaces = observe::namespaces(&self.opts.namespace, running.as_ref(), &view.disk);
        let api = observe::api_pods(&self.client, &self.opts.node, &namespaces).await;
        let answer = api.as_ref().map_or_else(|f| f.answer, |_| Answer::Answered);
        let limit = self.opts.unauthorized_timeout;
        if let Some(g) = self.refusals.note(answer, Instant::now(), limit)
            && let Err(f) = &api
        {
            self.gave_up = Some((g, f.message.clone()));
        }
        self.api.note(
            "the api-server",
            api.as_ref().map(|_| ()).map_err(|f| f.message.as_str()),
            &mut self.log,
        );
        let mut disk = view.disk;
        let observed = observe::assemble(
            api.ok(),
            running,
            kubelet,
            disk.clone(),
            self.opts.self_key.is_some(),
        );
        let step = state::step(&self.state, &observed, Timestamp::now(), &self.params);
        self.state = step.state;
        for e in &step.errors {
            self.log.warn(&e.to_string());
        }
        for action in &step.actions {
            self.apply(action, &mut disk, started).await;
        }
        self.failed.retain(|k, _| disk.contains_key(k));
        status(&disk, self.api.up, self.runtime_health.up)
    }

    /// Executes one action, updating `disk` to match and logging the outcome.
    async fn apply(
        &mut self,
        action: &Action,
        disk: &mut BTreeMap<PodKey, OnDisk>,
        started: Instant,
    ) {
        let key = action.key().clone();
        // Ok(whether something changed on disk)
        let result = match action {
            Action::Save {
                manifest,
                materialize,
                ..
            } => {
                if started.elapsed() > CYCLE_BUDGET {
                    self.state.save_failed(&key);
                    return;
                }
                let saved = self
                    .exec
                    .save(&self.client, &key, manifest, materialize)
                    .await;
                if saved.is_ok() {
                    note(disk, &key, |d| d.saved = Some((**manifest).clone()));
                }
                saved
            }
            Action::Activate { .. } => self.exec.activate(&key).map(|()| {
                note(disk, &key, |d| d.active = Active::Current);
                true
            }),
            Action::Deactivate { .. } => self.exec.deactivate(&key).map(|()| {
                note(disk, &key, |d| d.active = Active::No);
                true
            }),
            Action::Remove { .. } => self.exec.remove(&key).map(|()| {
                disk.remove(&key);
                true
            }),
        };
        match result {
            Ok(changed) => {
                if changed {
                    let pod = key.to_string();
                    let f = Fields {
                        pod: Some(&pod),
                        outcome: Some(done_word(action)),
                        ..Fields::default()
                    };
                    logfields::info(f, &done(action));
                } else {
                    tracing::debug!("the checkpoint of {key} is up to date");
                }
                if let Some(e) = self.failed.remove(&key) {
                    self.log.forget(&e);
                }
            }
            Err(e) => {
                if matches!(action, Action::Save { .. }) {
                    self.state.save_failed(&key);
                }
                let msg = format!("{} failed: {e}", what(action));
                self.log.warn(&msg);
                self.failed.insert(key, msg);
            }
        }
    }
}

fn note(disk: &mut BTreeMap<PodKey, OnDisk>, key: &PodKey, f: impl FnOnce(&mut OnDisk)) {
    f(disk.entry(key.clone()).or_default());
}
