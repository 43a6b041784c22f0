//! The kubelet ↔ api-server side, with kube-rs as the client: register the Node and keep
//! it `Ready` (Lease in `kube-node-lease` plus a status heartbeat every 5 s), post a
//! mirror pod for every static pod, watch the pods bound to this node
//! (`fieldSelector=spec.nodeName=<node>`) and hand them to the sync loop, post each
//! pod's status when it changes, and delete pods that carry a `deletionTimestamp` (grace
//! 0) once their processes are gone. `start`'s wait (phase `Running`, Nodes `Ready`)
//! and the checkpointer's API view are exactly these objects.
//!
//! Every call is retried on the next tick, so the kubelet may start before the
//! api-server it runs as a static pod (the usual bootstrap order).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::staticpods::{HASH, MIRROR};
use super::{Desired, Shared, Source, key};

const HEARTBEAT: Duration = Duration::from_secs(5);
const STATUS_SYNC: Duration = Duration::from_millis(500);

pub struct ApiSync {
    store: reflector::Store<Pod>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

struct Ctx {
    shared: Arc<Shared>,
    client: Client,
    store: reflector::Store<Pod>,
    /// `ns/name` → last status posted.
    posted: Mutex<BTreeMap<String, Value>>,
}

fn is_mirror(p: &Pod) -> bool {
    p.annotations().contains_key(MIRROR)
}

impl ApiSync {
    /// Builds the client from `kubeconfig` and starts the watch and the sync tasks.
    pub async fn start(shared: Arc<Shared>, kubeconfig: &Path) -> Result<ApiSync> {
        // kube-rs may see more than one rustls provider in this build; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)
            .with_context(|| format!("reading --kubeconfig {}", kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let client = Client::try_from(config)?;
        let _ = shared.api.set(super::apiobjects::ApiHandle {
            client: client.clone(),
        });
        let pods: Api<Pod> = Api::all(client.clone());
        let wc =
            watcher::Config::default().fields(&format!("spec.nodeName={}", shared.cfg.node_name));
        let (store, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(pods, wc).default_backoff());
        // Relists and every change are logged: a drill that fails on a pod this node
        // never started reads here what its watch last brought, and when.
        let watch = tokio::spawn(async move {
            stream
                .for_each(|ev| async move {
                    match ev {
                        Err(e) => crate::note!("fake-kubelet: pod watch: {e}"),
                        Ok(watcher::Event::Init) => {
                            crate::note!("fake-kubelet: pod watch: listing");
                        }
                        Ok(watcher::Event::InitDone) => {
                            crate::note!("fake-kubelet: pod watch: listed");
                        }
                        Ok(watcher::Event::Apply(p)) => crate::note!(
                            "fake-kubelet: pod watch: {} at {}",
                            key(&p),
                            p.resource_version().unwrap_or_default()
                        ),
                        Ok(watcher::Event::Delete(p)) => crate::note!(
                            "fake-kubelet: pod watch: {} deleted at {}",
                            key(&p),
                            p.resource_version().unwrap_or_default()
                        ),
                        Ok(watcher::Event::InitApply(_)) => {}
                    }
                })
                .await;
            crate::note!("fake-kubelet: pod watch: ended");
        });
        let ctx = Arc::new(Ctx {
            shared: shared.clone(),
            client,
            store: store.clone(),
            posted: Mutex::default(),
        });
        let node = tokio::spawn(node_loop(ctx.clone()));
        let pods = tokio::spawn(pod_loop(ctx));
        Ok(ApiSync {
            store,
            shared,
            tasks: vec![watch, node, pods],
        })
    }

    /// api-server pods this node should run: bound here, not mirror pods, not being
    /// deleted, and not finished (unless already running here).
    pub fn desired(&self) -> BTreeMap<String, Desired> {
        let mut out = BTreeMap::new();
        for p in self.store.state() {
            let k = key(&p);
            let terminal = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            if is_mirror(&p)
                || p.metadata.deletion_timestamp.is_some()
                || (terminal && !self.shared.has(&k))
            {
                continue;
            }
            let mut pod = (*p).clone();
            pod.status = None;
            let identity = p.uid().unwrap_or_default();
            out.insert(
                k,
                Desired {
                    pod,
                    source: Source::Api,
                    identity,
                },
            );
        }
        out
    }

    pub async fn shutdown(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn node_loop(ctx: Arc<Ctx>) {
    let mut registered = false;
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(e) = heartbeat(&ctx, &mut registered).await {
            crate::note!("fake-kubelet: node heartbeat: {e:#}");
        }
    }
}

async fn heartbeat(ctx: &Ctx, registered: &mut bool) -> Result<()> {
    let cfg = &ctx.shared.cfg;
    let name = cfg.node_name.as_str();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
        ),
    ]);
    // `--node-labels` only on registration; an existing Node gets back only the default
    // labels (upstream `tryRegisterWithAPIServer` → `updateDefaultLabels`), so a label an
    // administrator set, such as the control-plane role, stays.
    let defaults = labels.clone();
    labels.extend(cfg.node_labels.clone());
    if !*registered {
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": labels}, "spec": {}}),
        )?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                nodes
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"labels": defaults}})),
                    )
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        *registered = true;
    }
    let now = Timestamp::now().to_string();
    let since = ctx.shared.started_at().to_string();
    let qty = json!({"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"});
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "fake-kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": since}],
        "addresses": [{"type": "InternalIP", "address": cfg.node_ip.to_string()}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.port}},
        "capacity": qty, "allocatable": qty,
        "nodeInfo": {"architecture": labels["kubernetes.io/arch"], "bootID": "", "containerRuntimeVersion": "fake://1.0",
            "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "v1.35.0-fake", "machineID": "",
            "operatingSystem": "linux", "osImage": "fake-kubelet", "systemUUID": ""}}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let spec = json!({"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": Timestamp::now().to_string()});
    match leases
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
    {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease: Lease = serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec}),
            )?;
            leases.create(&PostParams::default(), &lease).await?;
        }
        r => {
            r?;
        }
    }
    Ok(())
}

async fn pod_loop(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(STATUS_SYNC);
    loop {
        tick.tick().await;
        if let Err(e) = sync_pods(&ctx).await {
            crate::note!("fake-kubelet: pod sync: {e:#}");
        }
    }
}

/// One pass: mirror pods, statuses, finished deletions.
async fn sync_pods(ctx: &Ctx) -> Result<()> {
    let running = ctx.shared.snapshot();
    let seen: BTreeMap<String, Arc<Pod>> = ctx
        .store
        .state()
        .into_iter()
        .map(|p| (key(&p), p))
        .collect();
    let pods = |ns: &str| Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let delete_now = |p: &Pod| {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: p.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let (ns, name) = (p.namespace().unwrap_or_default(), p.name_any());
        async move { pods(&ns).delete(&name, &dp).await.map(|_| ()) }
    };
    // Mirror pods: create, or replace when the static pod's hash changed.
    for (source, pod) in &running {
        if *source != Source::File {
            continue;
        }
        let k = key(pod);
        let hash = pod.annotations().get(HASH).cloned().unwrap_or_default();
        let current = seen.get(&k);
        let fresh = current.is_some_and(|m| {
            m.annotations().get(MIRROR) == Some(&hash) && m.metadata.deletion_timestamp.is_none()
        });
        if fresh {
            continue;
        }
        if let Some(m) = current {
            delete_now(m).await.ok();
            continue;
        }
        // A mirror pod is owned by its Node, so it cannot be created before the Node
        // exists (upstream's `CreateMirrorPod` fails then and the kubelet retries).
        let Some(owner) = node_owner(ctx).await else {
            continue;
        };
        let mut mirror = pod.clone();
        mirror.status = None;
        mirror.metadata.uid = None;
        mirror.metadata.owner_references = Some(vec![owner]);
        mirror.annotations_mut().insert(MIRROR.into(), hash);
        pods(&pod.namespace().unwrap_or_default())
            .create(&PostParams::default(), &mirror)
            .await?;
        lock(&ctx.posted).remove(&k);
    }
    // Statuses of everything running here that the api-server knows.
    for (_, pod) in &running {
        let k = key(pod);
        let Some(status) = &pod.status else { continue };
        let body = serde_json::to_value(status)?;
        let Some(api) = seen.get(&k) else { continue };
        if lock(&ctx.posted).get(&k) == Some(&body) && !ready_differs(api, status) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let patch = Patch::Merge(json!({"status": body}));
        match pods(&ns)
            .patch_status(&pod.name_any(), &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {
                lock(&ctx.posted).insert(k, body);
            }
            Err(e) => crate::note!("fake-kubelet: status of {k}: {e}"),
        }
    }
    // Mirror pods without a static pod, and deleted pods whose processes are gone.
    for (k, p) in &seen {
        let orphan_mirror = is_mirror(p) && !running.iter().any(|(_, r)| key(r) == *k);
        let deleted =
            !is_mirror(p) && p.metadata.deletion_timestamp.is_some() && !ctx.shared.has(k);
        if orphan_mirror || deleted {
            if let Err(e) = delete_now(p).await {
                crate::note!("fake-kubelet: deleting {k}: {e}");
            }
            lock(&ctx.posted).remove(k);
        }
    }
    Ok(())
}

/// The owner reference every mirror pod carries: its Node, as controller. Upstream's
/// `basicMirrorClient.CreateMirrorPod` (pkg/kubelet/pod/mirror_client.go) sets it, and
/// the NodeRestriction admission plugin refuses a node's mirror pod without it.
async fn node_owner(ctx: &Ctx) -> Option<OwnerReference> {
    let name = ctx.shared.cfg.node_name.as_str();
    let node = Api::<Node>::all(ctx.client.clone())
        .get_opt(name)
        .await
        .ok()??;
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.into(),
        uid: node.metadata.uid?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// The status manager's `needsReconcile` (`pkg/kubelet/status/status_manager.go`), for
/// the Ready condition: when the API's pod says otherwise than this kubelet (the node
/// lifecycle controller's `MarkPodsNotReady` after a long silence), the status is
/// posted again even though it did not change here.
fn ready_differs(api: &Pod, ours: &k8s_openapi::api::core::v1::PodStatus) -> bool {
    let ready = |s: Option<&k8s_openapi::api::core::v1::PodStatus>| {
        s.and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    ready(api.status.as_ref()) != ready(Some(ours))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_the_api_lost_is_posted_again() {
        let status = |r: &str| -> k8s_openapi::api::core::v1::PodStatus {
            serde_json::from_value(
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": r}]}),
            )
            .unwrap_or_default()
        };
        let api = |r: &str| Pod {
            status: Some(status(r)),
            ..Pod::default()
        };
        assert!(ready_differs(&api("False"), &status("True")));
        assert!(!ready_differs(&api("True"), &status("True")));
    }
}
