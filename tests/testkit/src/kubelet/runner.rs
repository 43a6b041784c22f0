//! One supervisor task per admitted pod: set up volumes, run init containers in order to
//! completion, then run the containers with restartPolicy and crash-loop back-off, and
//! stop everything within the grace period when told to. Admission (host ports) happens
//! before, in the sync loop; a rejected pod gets no supervisor ([`rejected`]).
//!
//! *Expected flow:* wait for the pod's previous incarnation to stop → volumes (retried;
//! `CreateContainerConfigError`) → init containers → containers → wait for stop.
//! A process that cannot bind a port it needs exits and is restarted with back-off,
//! as with a real runtime, after the kubelet's crash-loop back-off ([`backoff`]: 10 s
//! doubling to 300 s, kept per container content across pod incarnations, reset by a run
//! of more than 10 minutes). *Guarantees:* at most one incarnation of a pod key runs at a
//! time; every process is SIGTERMed then SIGKILLed within `min(grace, --max-grace-period)`
//! of a stop. *Caveats:* sidecar init containers (`restartPolicy: Always` on an init
//! container) run as plain init containers; a container that cannot be created
//! (`ErrImagePull`, `CreateContainerError`) is retried every 10 s, without upstream's
//! separate image-pull back-off.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::watch;

use super::status::{AfterExit, CState, Live, State, Term, after_exit, run_id, waiting};
use super::volumes::{self, PodVolumes};
use super::{Done, Entry, Shared, Source, backoff, probe, process};

/// How often API-backed volumes are refreshed, and a failed volume setup retried.
const VOLUME_SYNC: Duration = Duration::from_secs(5);
const VOLUME_RETRY: Duration = Duration::from_secs(1);
/// `backOffPeriod` (`pkg/kubelet/kubelet.go`): how soon the pod worker retries a sync that
/// failed without an exited container to back off from (`CreateContainerError`), at the
/// low end of its jitter.
const POD_WORKER_RETRY: Duration = Duration::from_secs(10);

struct Ctx {
    shared: Arc<Shared>,
    key: String,
    pod: Pod,
    live: Arc<Mutex<Live>>,
    stop: watch::Receiver<bool>,
}

#[derive(Clone, Copy)]
enum Which {
    Init(usize),
    Main(usize),
}

/// Starts the supervisor for `pod` under `key`, after `after` (the previous incarnation).
pub fn start(
    shared: Arc<Shared>,
    key: String,
    pod: Pod,
    source: Source,
    identity: String,
    after: Option<Done>,
) -> Entry {
    let spec = pod.spec.clone().unwrap_or_default();
    let cs = |c: &Container, r: &str| CState::new(&c.name, c.image.as_deref().unwrap_or(""), r);
    let first = if spec.init_containers.as_ref().is_some_and(|v| !v.is_empty()) {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let live = Live::new(
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| cs(c, "ContainerCreating"))
            .collect(),
        spec.containers.iter().map(|c| cs(c, first)).collect(),
    );
    let live = Arc::new(Mutex::new(live));
    let (stop_tx, stop) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        shared,
        key,
        pod: pod.clone(),
        live: live.clone(),
        stop,
    });
    let task = tokio::spawn(supervise(ctx, after));
    let done: Done = async move {
        let _ = task.await;
    }
    .boxed()
    .shared();
    Entry {
        pod,
        source,
        identity,
        live,
        stop: stop_tx,
        done,
    }
}

/// The entry of a pod admission refused: it never runs, and shows `Failed` with
/// `reason`/`message` until it leaves the desired set.
pub fn rejected(
    pod: Pod,
    source: Source,
    identity: String,
    reason: String,
    message: String,
) -> Entry {
    let mut live = Live::new(Vec::new(), Vec::new());
    live.rejected = Some((reason, message));
    let (stop, _) = watch::channel(false);
    let done: Done = async {}.boxed().shared();
    Entry {
        pod,
        source,
        identity,
        live: Arc::new(Mutex::new(live)),
        stop,
        done,
    }
}

impl Ctx {
    fn update(&self, which: Which, f: impl FnOnce(&mut CState)) {
        let mut l = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let c = match which {
            Which::Init(i) => l.init.get_mut(i),
            Which::Main(i) => l.containers.get_mut(i),
        };
        if let Some(c) = c {
            f(c);
        }
    }

    fn live(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.live.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Sleeps `d`; true if the pod was told to stop meanwhile.
    async fn sleep_or_stop(&self, d: Duration) -> bool {
        let mut rx = self.stop.clone();
        // A closed channel (the entry is gone) also means stop.
        let stopped = tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = rx.wait_for(|s| *s) => true,
        };
        stopped || *self.stop.borrow()
    }

    fn grace(&self) -> Duration {
        let s = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(s.max(0) as u64).min(self.shared.cfg.max_grace)
    }

    fn node_ip(&self) -> String {
        self.shared.cfg.node_ip.to_string()
    }
}

async fn supervise(ctx: Arc<Ctx>, after: Option<Done>) {
    if let Some(prev) = after {
        prev.await;
    }
    // Volumes first, as the real kubelet mounts them before it creates any container.
    let Some(vols) = setup_volumes(&ctx).await else {
        return;
    };
    let vols = Arc::new(vols);
    let refresh = tokio::spawn(refresh_volumes(ctx.clone(), vols.clone()));
    run_pod(&ctx, &vols).await;
    let mut rx = ctx.stop.clone();
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
    refresh.abort();
    vols.cleanup();
}

/// Sets the pod's volumes up, retrying while the containers wait; `None` if stopped.
async fn setup_volumes(ctx: &Arc<Ctx>) -> Option<PodVolumes> {
    loop {
        match volumes::setup(&ctx.shared, &ctx.pod).await {
            Ok(v) => return Some(v),
            Err(e) => {
                crate::note!("fake-kubelet: {}: {}: {}", ctx.key, e.reason, e.message);
                ctx.live(|l| {
                    for c in l.init.iter_mut().chain(l.containers.iter_mut()) {
                        c.state = waiting(e.reason, &e.message);
                    }
                });
            }
        }
        if ctx.sleep_or_stop(VOLUME_RETRY).await {
            return None;
        }
    }
}

/// Keeps secret, configMap, downwardAPI and token volumes current while the pod runs.
async fn refresh_volumes(ctx: Arc<Ctx>, vols: Arc<PodVolumes>) {
    loop {
        tokio::time::sleep(VOLUME_SYNC).await;
        if let Err(e) = vols.sync(&ctx.shared, &ctx.pod).await {
            crate::note!("fake-kubelet: {}: refreshing volumes: {e}", ctx.key);
        }
    }
}

async fn run_pod(ctx: &Arc<Ctx>, vols: &PodVolumes) {
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        match run_container(ctx, vols, Which::Init(i), c).await {
            Some(0) => {}
            Some(_) => return ctx.live(|l| l.init_failed = true),
            None => return,
        }
    }
    ctx.live(|l| {
        l.initialized = true;
        for c in &mut l.containers {
            c.state = waiting("ContainerCreating", "");
        }
    });
    let runs = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| run_container(ctx, vols, Which::Main(i), c));
    futures::future::join_all(runs).await;
}

/// Runs one container until the policy says it is done (`Some(exit code)`) or the pod is
/// stopped (`None`).
async fn run_container(
    ctx: &Arc<Ctx>,
    vols: &PodVolumes,
    which: Which,
    c: &Container,
) -> Option<i32> {
    let cfg = &ctx.shared.cfg;
    let policy = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into());
    let (ns, name) = ctx.key.split_once('/').unwrap_or(("default", &ctx.key));
    let log = process::log_path(cfg, ns, name, &c.name);
    let key = backoff::stable_key(&ctx.pod, c);
    // When the container last exited: the start after it goes through `doBackOff`.
    let mut exited: Option<(Instant, Term)> = None;
    loop {
        if let Some((finished, t)) = exited.take() {
            if !wait_back_off(ctx, which, c, &key, finished).await {
                return None;
            }
            ctx.update(which, |s| {
                s.last = Some(t);
                s.restarts += 1;
            });
        }
        let env = process::env(c, &ctx.pod, &ctx.node_ip());
        let table = vols.tables.get(&c.name).cloned().unwrap_or_default();
        let spawned = process::argv(cfg, c, &env).and_then(|a| {
            let (a, env) = process::in_node(&table, a, &env, &ctx.node_ip());
            process::spawn(&a, &env, c.working_dir.as_deref(), &log)
        });
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                crate::note!(
                    "fake-kubelet: {}/{}: {}: {}",
                    ctx.key,
                    c.name,
                    e.reason,
                    e.message
                );
                // No container was created, so there is no exit to back off from:
                // upstream's pod worker retries the sync after `backOffPeriod`.
                ctx.update(which, |s| s.state = waiting(e.reason, &e.message));
                if ctx.sleep_or_stop(POD_WORKER_RETRY).await {
                    return None;
                }
                continue;
            }
        };
        let since = Timestamp::now();
        let pid = child.id();
        let probe = c
            .readiness_probe
            .clone()
            .filter(|_| matches!(which, Which::Main(_)));
        ctx.update(which, |s| {
            s.state = State::Running { since };
            s.pid = pid;
            s.id = pid.map(|p| run_id(&ctx.key, &c.name, since, p));
            s.ever_started = true;
            s.ready = probe.is_none() && matches!(which, Which::Main(_));
        });
        let prober = probe.map(|p| tokio::spawn(probe_loop(ctx.clone(), which, c.clone(), p)));
        let mut rx = ctx.stop.clone();
        let stop = async {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (code, stopped) = tokio::select! {
            st = child.wait() => (st.map(process::exit_code).unwrap_or(255), false),
            _ = stop => (process::terminate(&mut child, ctx.grace()).await, true),
        };
        if let Some(p) = prober {
            p.abort();
        }
        let reason = if code == 0 { "Completed" } else { "Error" };
        let t = Term {
            exit_code: code,
            reason: reason.into(),
            started: Some(since),
            finished: Timestamp::now(),
        };
        ctx.update(which, |s| {
            s.state = State::Terminated(t.clone());
            s.pid = None;
            s.ready = false;
        });
        if stopped {
            return None;
        }
        if after_exit(&policy, matches!(which, Which::Init(_)), code) == AfterExit::Done {
            ctx.update(which, |s| s.done = Some(code));
            return Some(code);
        }
        exited = Some((Instant::now(), t));
    }
}

/// `doBackOff` before a restart: while the kubelet-wide table says the container is in
/// back-off since it `finished`, it waits as `CrashLoopBackOff`; then `Next` and go.
/// False if the pod was stopped meanwhile.
async fn wait_back_off(
    ctx: &Arc<Ctx>,
    which: Which,
    c: &Container,
    key: &str,
    finished: Instant,
) -> bool {
    loop {
        let (remaining, current) = {
            let table = lock(&ctx.shared.backoff);
            (
                table.remaining(key, finished, Instant::now()),
                table.get(key),
            )
        };
        let Some(d) = remaining else {
            lock(&ctx.shared.backoff).next(key, finished, Instant::now());
            return true;
        };
        let msg = backoff::message(current, &c.name, &ctx.pod);
        ctx.update(which, |s| s.state = waiting("CrashLoopBackOff", &msg));
        if ctx.sleep_or_stop(d).await {
            return false;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn probe_loop(
    ctx: Arc<Ctx>,
    which: Which,
    c: Container,
    p: k8s_openapi::api::core::v1::Probe,
) {
    let (initial, period, failure_threshold) = probe::timing(&p);
    tokio::time::sleep(initial).await;
    let mut failures = 0;
    loop {
        let ok = probe::run(&c, &p, &ctx.node_ip()).await;
        failures = if ok { 0 } else { failures + 1 };
        if ok || failures >= failure_threshold {
            ctx.update(which, |s| s.ready = ok);
        }
        tokio::time::sleep(period).await;
    }
}
