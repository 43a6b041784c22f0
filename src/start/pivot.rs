//! The pivot, with a way back. Bootstrap and self-hosted pods of a component share host
//! ports, so the self-hosted one cannot serve until its bootstrap twin is gone. One
//! component at a time: remove its bootstrap manifest, wait until a self-hosted pod on
//! this node (`--node-name`, or any live node for a Deployment) is Ready with a status
//! written after the removal, and if that does not happen within `--pivot-timeout`, put the bootstrap manifest back and fail. The
//! api-server goes last, so every other pivot is watched through a working API, and
//! its own pivot also requires `/readyz` through the kubeconfig's address.
//!
//! Where the proof must come from: a DaemonSet component (the api-server, etcd, the
//! checkpointer) must have a pod on *this* node, since the bootstrap pod that was removed
//! ran here and another master's pod that was Ready all along proves nothing about this
//! one. A Deployment component (scheduler, controller-manager) is one service for the
//! whole cluster, elected by lease: its scheduler may well place every replica on the
//! other masters, so a Ready replica on any live node is proof enough. Why "written after
//! the removal": a pod that was Ready before (a component without a host port runs beside
//! its twin) is believed only through the settle rule counted from the removal, so its
//! kubelet has reported it Ready since the bootstrap pod went.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use jiff::Timestamp;

use super::observe::{self, Required, Stage};
use super::plan::{BootstrapPod, ETCD, Plan};
use super::progress::Progress;
use super::{StartError, StartOptions, cluster, install, wait_api, wait_for};

/// The component that serves the API.
const APISERVER: &str = "kube-apiserver";

/// Pivots every bootstrap pod that has a self-hosted parent; returns their names.
pub async fn pivot_all(
    plan: &Plan,
    opts: &StartOptions,
    client: &kube::Client,
    ready_since: &mut BTreeMap<String, Timestamp>,
    progress: &mut Progress,
) -> Result<Vec<String>, StartError> {
    let mut order: Vec<&BootstrapPod> = plan
        .bootstrap
        .iter()
        .filter(|b| b.parent.is_some())
        .collect();
    // etcd first, so every later pivot runs on the final etcd; the api-server last.
    order.sort_by_key(|b| {
        let rank = match b.component() {
            ETCD => 0,
            APISERVER => 2,
            _ => 1,
        };
        (rank, b.component().to_string())
    });
    let mut done = Vec::new();
    for b in order {
        pivot_one(b, opts, client, ready_since, progress).await?;
        done.push(b.component().to_string());
    }
    Ok(done)
}

async fn pivot_one(
    b: &BootstrapPod,
    opts: &StartOptions,
    client: &kube::Client,
    ready_since: &mut BTreeMap<String, Timestamp>,
    progress: &mut Progress,
) -> Result<(), StartError> {
    let Some(parent) = &b.parent else {
        return Ok(());
    };
    let component = b.component().to_string();
    let req = Required {
        namespace: parent.namespace.clone(),
        name: parent.name.clone(),
    };
    let removed_at = Timestamp::now();
    progress.phase("pivot");
    progress.component(Some(&component));
    install::remove_manifest(&opts.pod_manifest_dir, &b.file, &b.bytes)?;
    progress.step(&format!(
        "pivot {component}: bootstrap pod removed; waiting for the self-hosted {component} to become Ready"
    ));
    let deadline = Instant::now() + opts.pivot_timeout;
    // The api-server serves only while etcd does: both pivots also need /readyz.
    let serves_api = component == APISERVER || component == ETCD;
    let namespaces = vec![req.namespace.clone()];
    let what = format!("the self-hosted {component} to become Ready");
    // Ready runs counted from the removal only (see the module doc).
    let mut seen_since = BTreeMap::new();
    let node = opts.node_name.as_str();
    let waited = wait_for(&what, deadline, opts.poll, progress, async || {
        if serves_api {
            cluster::health(client, "/readyz").await?;
        }
        let w = cluster::world(client, &namespaces).await?;
        let now = Timestamp::now();
        let live = observe::live_nodes(&w, now, opts.rules.node_grace);
        observe::track_ready(ready_since, &w, &live, now);
        let v = assess_here(
            &req,
            &w,
            &live,
            node,
            removed_at,
            now,
            &opts.rules,
            &mut seen_since,
        );
        if v.stage == Stage::Ready {
            Ok(())
        } else {
            Err(v.detail)
        }
    })
    .await;
    match waited {
        Ok(()) => {
            progress.step(&format!(
                "pivot {component}: the self-hosted {component} is Ready"
            ));
            Ok(())
        }
        Err(e) => {
            install::install_manifest(&opts.pod_manifest_dir, &b.file, &b.bytes)?;
            progress.warn(&format!(
                "pivot {component} failed ({e}); bootstrap pod put back"
            ));
            let mut left = String::new();
            if serves_api {
                let back = Instant::now() + opts.pivot_timeout;
                if let Err(again) =
                    wait_api(client, "the kubeconfig's server", back, opts.poll, progress).await
                {
                    left = format!("; the api-server did not come back either: {again}");
                }
            }
            Err(StartError::Pivot {
                component,
                reason: e.to_string(),
                left,
            })
        }
    }
}

/// The verdict on `req` counting its DaemonSet pods on `node` only and its Deployment
/// pods on every live node, with `seen_since` tracking Ready runs seen since the
/// removal. Pure.
#[allow(clippy::too_many_arguments)]
fn assess_here(
    req: &Required,
    w: &observe::World,
    live: &BTreeSet<String>,
    node: &str,
    removed_at: Timestamp,
    now: Timestamp,
    rules: &observe::Rules,
    seen_since: &mut BTreeMap<String, Timestamp>,
) -> observe::Verdict {
    let on_node = |p: &k8s_openapi::api::core::v1::Pod| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
    };
    let scoped = observe::World {
        pods: w
            .pods
            .iter()
            .filter(|p| on_node(p) || observe::owned_by_deployment(p))
            .cloned()
            .collect(),
        // What a runtime vouches for predates the removal: never evidence here.
        confirmed: Default::default(),
        ..w.clone()
    };
    observe::track_ready(seen_since, &scoped, live, now);
    let mut v = observe::assess(req, &scoped, live, removed_at, now, rules, seen_since);
    if !live.contains(node) {
        v.detail = format!("this node {node:?} is not a live node of the cluster");
    } else if v.stage == Stage::Missing
        && v.detail.starts_with("no pod of")
        && w.pods
            .iter()
            .any(|p| observe::owned_by(p, req, &w.replicasets) && !observe::owned_by_deployment(p))
    {
        v.detail = format!("no pod of {req} on this node {node:?}");
    }
    v
}

#[cfg(test)]
#[path = "pivot_tests.rs"]
mod tests;
