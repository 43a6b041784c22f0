//! `fake-kubelet`: a kubelet double for machines where no kubelet can be installed. It runs
//! pods as local processes (images mapped to executables by `--image-map`), from the
//! static pod dir and, with `--kubeconfig`, from the api-server, and reports them the way
//! kubeboot's `start`, `recover` and the checkpointer observe a real kubelet: `/pods` on
//! the kubelet ports, mirror pods and pod status in the api-server, a Ready Node, and
//! with `--container-runtime-endpoint` the runtime's CRI v1 socket ([`cri`]).
//!
//! The sync loop is level-triggered: every `--file-check-frequency` (500 ms) the desired
//! pods (static files ∪ api-server pods bound here) are compared with the running ones by
//! an identity (file content hash, or pod UID); a pod that vanished or changed is stopped
//! and its next incarnation starts only once the old one has stopped.
//!
//! Several kubelets can simulate several nodes on one machine: `--root-fs` is the node's
//! filesystem (hostPath volumes resolve under it), `--node-ip` the node's address (the
//! kubelet ports bind it, and containers get it as `KUBEBOOT_TESTKIT_NODE_IP`), and
//! volumes are mapped into each container by rewriting paths in argv and env
//! ([`mounts`]), the double's stand-in for a mount namespace.
//!
//! Admission is upstream's NodePorts check only (`ports::admit`): a new pod whose host
//! port an admitted, still active pod holds is rejected (`Failed`, reason `NodePorts`)
//! and never run, as the real kubelet's `rejectPod` does.
//!
//! Differences from a real kubelet: no containers, namespaces or cgroups, every pod shares
//! the host network (podIP = node IP), containers die with the kubelet, liveness/startup probes are not run,
//! and logs are `<root-dir>/pods/<ns>_<name>/<container>.log` rather than
//! `/var/log/pods`. Volumes: only hostPath, emptyDir, secret, configMap, downwardAPI and
//! projected (no clusterTrustBundle/podCertificate) are supported; a container sees them
//! only through argv/env rewriting and `KUBEBOOT_TESTKIT_MOUNTS` (paths inside shell
//! scripts or files are not rewritten, `readOnly` is not enforced, and fsGroup/runAsUser
//! change no ownership); a volume that cannot be set up shows as waiting
//! `CreateContainerConfigError` (a real kubelet: `ContainerCreating` plus a `FailedMount`
//! event); API-backed volumes refresh every 5 s (real: about a minute), also under
//! `subPath`; the service-account token volume is added by the kubelet itself (a real
//! cluster's ServiceAccount admission adds it), is skipped when the ServiceAccount does
//! not exist, and takes `ca.crt` from the kubelet's kubeconfig rather than the
//! `kube-root-ca.crt` ConfigMap; resource-field downward API items are skipped.

pub mod apiobjects;
pub mod apisync;
pub mod atomic;
pub mod auth;
pub mod backoff;
pub mod config;
pub mod cri;
pub mod harness;
pub mod harness_tls;
pub mod mounts;
pub mod ports;
pub mod probe;
pub mod process;
pub mod projection;
pub mod runner;
pub mod server;
pub mod staticpods;
pub mod status;
pub mod volumes;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::future::{BoxFuture, Shared as SharedFuture};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

pub use config::Config;

/// Resolves when a pod's supervisor has stopped every process.
pub type Done = SharedFuture<BoxFuture<'static, ()>>;

/// Where a pod came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Api,
}

/// A pod this kubelet is running.
pub struct Entry {
    pub pod: Pod,
    pub source: Source,
    /// Content hash for static pods, UID for api-server pods: a change means restart.
    pub identity: String,
    pub live: Arc<Mutex<status::Live>>,
    stop: watch::Sender<bool>,
    done: Done,
}

impl Entry {
    fn live_phase(&self) -> &'static str {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).phase()
    }

    /// The pod with its current status, as `/pods` and the api-server see it.
    pub fn render(&self, node_ip: &str) -> Pod {
        let mut pod = self.pod.clone();
        pod.status = Some(
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .render(node_ip),
        );
        pod
    }
}

/// State shared by the sync loop, the supervisors, the HTTP servers and the api sync.
pub struct Shared {
    pub cfg: Config,
    /// `ns/name` → running pod.
    pub pods: Mutex<BTreeMap<String, Entry>>,
    /// Pods being stopped: `ns/name` → (generation, done).
    terminating: Mutex<BTreeMap<String, (u64, Done)>>,
    generation: std::sync::atomic::AtomicU64,
    started: jiff::Timestamp,
    /// The api-server client, once `--kubeconfig` is loaded.
    pub api: std::sync::OnceLock<apiobjects::ApiHandle>,
    /// The crash-loop back-off table, kubelet-wide as upstream's `crashLoopBackOff`.
    pub backoff: Mutex<backoff::BackOff>,
}

/// A pod the sync loop wants running.
pub struct Desired {
    pub pod: Pod,
    pub source: Source,
    pub identity: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn key(pod: &Pod) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    format!("{ns}/{}", pod.metadata.name.as_deref().unwrap_or(""))
}

impl Shared {
    pub fn new(cfg: Config) -> Arc<Shared> {
        Arc::new(Shared {
            pods: Mutex::default(),
            terminating: Mutex::default(),
            generation: Default::default(),
            started: jiff::Timestamp::now(),
            api: std::sync::OnceLock::new(),
            backoff: Mutex::new(backoff::BackOff::new(cfg.backoff_base, cfg.backoff_max)),
            cfg,
        })
    }

    /// When this kubelet started (the Node's Ready transition time).
    pub fn started_at(&self) -> jiff::Timestamp {
        self.started
    }

    /// Every running pod with its status.
    pub fn snapshot(&self) -> Vec<(Source, Pod)> {
        let ip = self.cfg.node_ip.to_string();
        lock(&self.pods)
            .values()
            .map(|e| (e.source, e.render(&ip)))
            .collect()
    }

    /// True while a pod under `key` is running or still stopping.
    pub fn has(&self, key: &str) -> bool {
        lock(&self.pods).contains_key(key) || lock(&self.terminating).contains_key(key)
    }

    fn stop(self: &Arc<Self>, key: String, e: Entry) {
        let _ = e.stop.send(true);
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.terminating).insert(key.clone(), (generation, e.done.clone()));
        let shared = self.clone();
        tokio::spawn(async move {
            e.done.await;
            let mut t = lock(&shared.terminating);
            if t.get(&key).is_some_and(|(g, _)| *g == generation) {
                t.remove(&key);
            }
        });
    }

    /// Stops what is no longer desired (or changed) and starts what is new.
    pub fn reconcile(self: &Arc<Self>, desired: BTreeMap<String, Desired>) {
        let mut pods = lock(&self.pods);
        let stale: Vec<String> = pods
            .iter()
            .filter(|(k, e)| desired.get(*k).is_none_or(|d| d.identity != e.identity))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some(e) = pods.remove(&k) {
                crate::note!("fake-kubelet: stopping pod {k}");
                self.stop(k, e);
            }
        }
        // New pods are admitted oldest first (`HandlePodAdditions` sorts by creation
        // time), each against the pods admitted before it that are still active.
        let mut fresh: Vec<(String, Desired)> = desired
            .into_iter()
            .filter(|(k, _)| !pods.contains_key(k))
            .collect();
        fresh.sort_by(|(ka, a), (kb, b)| {
            let t = |d: &Desired| d.pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (t(a), ka).cmp(&(t(b), kb))
        });
        for (k, d) in fresh {
            let active = pods
                .values()
                .filter(|e| !matches!(e.live_phase(), "Succeeded" | "Failed"))
                .map(|e| &e.pod);
            if let Err((reason, message)) = ports::admit(&d.pod, active) {
                crate::note!("fake-kubelet: rejecting pod {k}: {reason}: {message}");
                let e = runner::rejected(d.pod, d.source, d.identity, reason, message);
                pods.insert(k, e);
                continue;
            }
            crate::note!("fake-kubelet: starting pod {k}");
            let after = lock(&self.terminating).get(&k).map(|(_, d)| d.clone());
            let e = runner::start(self.clone(), k.clone(), d.pod, d.source, d.identity, after);
            pods.insert(k, e);
        }
    }

    /// Stops every pod and waits for them, bounded by the grace period plus 5 s.
    pub async fn stop_all(self: &Arc<Self>) {
        self.reconcile(BTreeMap::new());
        let waits: Vec<Done> = lock(&self.terminating)
            .values()
            .map(|(_, d)| d.clone())
            .collect();
        let all = futures::future::join_all(waits);
        let _ = tokio::time::timeout(self.cfg.max_grace + Duration::from_secs(5), all).await;
    }
}

/// Static pods from the manifest dir, keyed `ns/name`.
fn static_desired(cfg: &Config) -> BTreeMap<String, Desired> {
    let Some(dir) = &cfg.pod_manifest_path else {
        return BTreeMap::new();
    };
    staticpods::scan(dir, &cfg.node_name)
        .into_iter()
        .map(|s| {
            (
                key(&s.pod),
                Desired {
                    pod: s.pod,
                    source: Source::File,
                    identity: s.hash,
                },
            )
        })
        .collect()
}

/// Runs the kubelet until `shutdown` resolves, then stops every pod.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let shared = Shared::new(cfg);
    let mut servers = server::start(&shared).await?;
    if let Some(endpoint) = &shared.cfg.container_runtime_endpoint {
        servers.push(cri::start(shared.clone(), endpoint).await?);
    }
    let api = match &shared.cfg.kubeconfig {
        Some(path) => Some(apisync::ApiSync::start(shared.clone(), path).await?),
        None => None,
    };
    let mut tick = tokio::time::interval(shared.cfg.file_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let mut desired = static_desired(&shared.cfg);
        if let Some(api) = &api {
            for (k, d) in api.desired() {
                desired.entry(k).or_insert(d);
            }
        }
        shared.reconcile(desired);
    }
    crate::note!("fake-kubelet: shutting down, stopping all pods");
    shared.stop_all().await;
    if let Some(api) = api {
        api.shutdown().await;
    }
    for s in servers {
        s.abort();
    }
    Ok(())
}
