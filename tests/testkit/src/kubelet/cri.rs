//! The fake kubelet's container runtime, as the CRI v1 `RuntimeService` on a unix socket
//! (`--container-runtime-endpoint unix:///path`): what `kubeboot checkpoint` asks first
//! for what runs on a node. Its messages and service are generated from the vendored
//! k8s.io/cri-api `api.proto` (`proto/cri/`), the same file the client is generated
//! from.
//!
//! The double has no runtime of its own, so the answers come from the kubelet's process
//! table, shaped as the real kubelet shapes what it asks a runtime to create
//! (`pkg/kubelet/kuberuntime/labels.go`, `kuberuntime_sandbox.go`):
//! - every pod the kubelet runs is one sandbox: metadata `{name, uid, namespace, 0}`,
//!   labels = the pod's labels + `io.kubernetes.pod.{name,namespace,uid}`, annotations =
//!   the pod's annotations. It is `SANDBOX_READY` while the pod has not terminated (a
//!   pod crash-looping or waiting for its host port keeps a ready sandbox, as on a real
//!   node) and `SANDBOX_NOTREADY` once it succeeded or failed, or once the kubelet
//!   stopped it (a stopped sandbox is remembered until the kubelet process exits);
//! - every container that has been started at least once is one container:
//!   `CONTAINER_RUNNING` while its process runs, else `CONTAINER_EXITED` (its last run).
//!   A container never started yet (being created, its volumes failing) has no CRI
//!   container, as on a real node. Labels: `io.kubernetes.pod.{name,namespace,uid}` and
//!   `io.kubernetes.container.name`; annotation `io.kubernetes.container.restartCount`.
//!
//! `ListPodSandbox` and `ListContainers` honour every filter field (`id`, `state`,
//! `pod_sandbox_id`, `label_selector`, ANDed) as api.proto says; `Version` answers
//! `v1`. Every other call is `UNIMPLEMENTED`. Simplifications: IDs are exact-match only
//! (containerd also accepts a unique prefix), IDs are derived hashes rather than random,
//! the runtime's state does not survive the kubelet process (a "reboot" starts with no
//! sandboxes at all, where containerd would still list the old ones NOTREADY), a pod
//! that starts and stops between two calls is never seen, and stopped sandboxes list no
//! containers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::Shared;
use super::status::State;

/// The generated CRI v1 messages and `RuntimeService` server (package `runtime.v1`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("runtime.v1");
}

use proto::runtime_service_server::{RuntimeService, RuntimeServiceServer};

const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const POD_UID: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";
const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Stopped sandboxes remembered at most.
const KEEP_STOPPED: usize = 256;

/// `unix:///path` → `/path`; the real kubelet also takes only `unix://` on Linux.
pub fn socket_path(endpoint: &str) -> Result<PathBuf> {
    match endpoint.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => Ok(PathBuf::from(p)),
        _ => bail!("--container-runtime-endpoint {endpoint:?}: want unix:///<absolute path>"),
    }
}

/// Binds the socket (replacing a stale one left by an earlier process) and serves it.
pub async fn start(shared: Arc<Shared>, endpoint: &str) -> Result<JoinHandle<()>> {
    let path = socket_path(endpoint)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(&path) {
        use std::os::unix::fs::FileTypeExt;
        if !m.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    let svc = RuntimeServiceServer::new(Cri {
        shared,
        seen: Mutex::default(),
    });
    Ok(tokio::spawn(async move {
        let incoming = UnixListenerStream::new(listener);
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
        {
            crate::note!("fake-kubelet: CRI server on {}: {e}", path.display());
        }
    }))
}

struct Cri {
    shared: Arc<Shared>,
    /// Sandboxes seen ready earlier whose pod the kubelet no longer runs, by id.
    /// Every sandbox listed so far, by id, as last listed.
    seen: Mutex<BTreeMap<String, proto::PodSandbox>>,
}

fn hex_id(parts: &[&str]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, parts.join("\0").as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

/// The sandboxes and containers of the pods running now.
fn current(shared: &Shared) -> (Vec<proto::PodSandbox>, Vec<proto::Container>) {
    let pods = shared.pods.lock().unwrap_or_else(|e| e.into_inner());
    let mut sandboxes = Vec::new();
    let mut containers = Vec::new();
    for (key, e) in pods.iter() {
        let live = e.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let m = &e.pod.metadata;
        let name = m.name.clone().unwrap_or_default();
        let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
        let uid = m.uid.clone().unwrap_or_default();
        let created = live.start_time;
        let id = hex_id(&[key, &e.identity, &created.to_string()]);
        let mut labels: HashMap<String, String> =
            m.labels.clone().unwrap_or_default().into_iter().collect();
        labels.insert(POD_NAME.into(), name.clone());
        labels.insert(POD_NAMESPACE.into(), namespace.clone());
        labels.insert(POD_UID.into(), uid.clone());
        let ready = !matches!(live.phase(), "Succeeded" | "Failed");
        let state = if ready {
            proto::PodSandboxState::SandboxReady
        } else {
            proto::PodSandboxState::SandboxNotready
        };
        sandboxes.push(proto::PodSandbox {
            id: id.clone(),
            metadata: Some(proto::PodSandboxMetadata {
                name: name.clone(),
                uid: uid.clone(),
                namespace: namespace.clone(),
                attempt: 0,
            }),
            state: state as i32,
            created_at: nanos(created),
            labels,
            annotations: m
                .annotations
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            runtime_handler: String::new(),
        });
        for c in live.init.iter().chain(live.containers.iter()) {
            let cstate = match &c.state {
                State::Running { .. } => proto::ContainerState::ContainerRunning,
                State::Terminated(_) => proto::ContainerState::ContainerExited,
                State::Waiting { .. } if c.ever_started || c.last.is_some() => {
                    proto::ContainerState::ContainerExited
                }
                State::Waiting { .. } => continue,
            };
            let attempt = u32::try_from(c.restarts).unwrap_or(0);
            let started = match &c.state {
                State::Running { since } => *since,
                State::Terminated(t) => t.started.unwrap_or(t.finished),
                State::Waiting { .. } => c.last.as_ref().map_or(created, |t| t.finished),
            };
            containers.push(proto::Container {
                id: c
                    .id
                    .clone()
                    .unwrap_or_else(|| hex_id(&[&id, &c.name, &attempt.to_string()])),
                pod_sandbox_id: id.clone(),
                metadata: Some(proto::ContainerMetadata {
                    name: c.name.clone(),
                    attempt,
                }),
                image: Some(proto::ImageSpec {
                    image: c.image.clone(),
                    ..Default::default()
                }),
                image_ref: c.image.clone(),
                state: cstate as i32,
                created_at: nanos(started),
                labels: HashMap::from([
                    (POD_NAME.into(), name.clone()),
                    (POD_NAMESPACE.into(), namespace.clone()),
                    (POD_UID.into(), uid.clone()),
                    (CONTAINER_NAME.into(), c.name.clone()),
                ]),
                annotations: HashMap::from([(RESTART_COUNT.into(), c.restarts.to_string())]),
                image_id: c.image.clone(),
            });
        }
    }
    (sandboxes, containers)
}

fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl Cri {
    /// Every sandbox: the running pods', and those listed before whose pod is gone
    /// (NOTREADY, the oldest forgotten beyond [`KEEP_STOPPED`]); the running pods'
    /// containers.
    fn sandboxes(&self) -> (Vec<proto::PodSandbox>, Vec<proto::Container>) {
        let (now, containers) = current(&self.shared);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let live: BTreeSet<&str> = now.iter().map(|s| s.id.as_str()).collect();
        for (id, s) in seen.iter_mut() {
            if !live.contains(id.as_str()) {
                s.state = proto::PodSandboxState::SandboxNotready as i32;
            }
        }
        for s in &now {
            seen.insert(s.id.clone(), s.clone());
        }
        while seen.len() > now.len() + KEEP_STOPPED {
            let oldest = seen
                .values()
                .filter(|s| !live.contains(s.id.as_str()))
                .min_by_key(|s| s.created_at)
                .map(|s| s.id.clone());
            match oldest {
                Some(id) => seen.remove(&id),
                None => break,
            };
        }
        (seen.values().cloned().collect(), containers)
    }
}

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(
        &self,
        _req: Request<proto::VersionRequest>,
    ) -> Result<Response<proto::VersionResponse>, Status> {
        Ok(Response::new(proto::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: super::status::RUNTIME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<proto::ListPodSandboxRequest>,
    ) -> Result<Response<proto::ListPodSandboxResponse>, Status> {
        let filter = req.into_inner().filter.unwrap_or_default();
        let (all, _) = self.sandboxes();
        let items = all
            .into_iter()
            .filter(|s| filter.id.is_empty() || s.id == filter.id)
            .filter(|s| filter.state.as_ref().is_none_or(|v| v.state == s.state))
            .filter(|s| labels_match(&filter.label_selector, &s.labels))
            .collect();
        Ok(Response::new(proto::ListPodSandboxResponse { items }))
    }

    async fn list_containers(
        &self,
        req: Request<proto::ListContainersRequest>,
    ) -> Result<Response<proto::ListContainersResponse>, Status> {
        let filter = req.into_inner().filter.unwrap_or_default();
        let (_, all) = self.sandboxes();
        let containers = all
            .into_iter()
            .filter(|c| filter.id.is_empty() || c.id == filter.id)
            .filter(|c| {
                filter.pod_sandbox_id.is_empty() || c.pod_sandbox_id == filter.pod_sandbox_id
            })
            .filter(|c| filter.state.as_ref().is_none_or(|v| v.state == c.state))
            .filter(|c| labels_match(&filter.label_selector, &c.labels))
            .collect();
        Ok(Response::new(proto::ListContainersResponse { containers }))
    }
}
