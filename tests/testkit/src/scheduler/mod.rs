//! `fake-scheduler`: a kube-scheduler double, so pods of self-hosted Deployments get
//! bound to nodes in tests where no real scheduler can run. It takes kube-scheduler's
//! flags ([`Config::from_args`] with `controllers::config::SCHEDULER`), elects a leader on
//! the Lease `kube-system/kube-scheduler` (`controllers::leader`), and then, as the
//! leader only, every [`RESYNC`]: lists Nodes and pods, and for each pod with no
//! `nodeName` and `schedulerName` `default-scheduler` (or empty), highest priority
//! first, either `POST`s `pods/<name>/binding` to the node `place::place` picks, or sets
//! the pod's `PodScheduled=False` condition (reason `Unschedulable`, kube-scheduler's
//! message) through the status subresource, once per distinct message.
//!
//! Like the controller-manager double it re-lists every cycle instead of caching, so it
//! survives api-server restarts with one logged line; a bind that loses a race (409) is
//! simply retried from the next listing.
//!
//! Not done (differences from the real component): the fit rules listed in `place.rs`
//! (no resources, volumes, required inter-pod affinity, topology spread,
//! preemption); no events; no scheduling queue or back-off; no profiles or
//! `--config`; `/healthz` is plain HTTP without authentication.

pub mod place;

use std::cmp::Reverse;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

pub use crate::controllers::Config;
use crate::controllers::{client, leader};
use place::Decision;

const COMPONENT: &str = "fake-scheduler";
/// How often pending pods are looked for.
pub const RESYNC: Duration = Duration::from_millis(500);

fn already_marked(p: &Pod, message: &str) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(message)
            })
        })
}

async fn bind(client: &Client, p: &Pod, node: &str) -> Result<()> {
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let name = p.metadata.name.clone().unwrap_or_default();
    let body = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let _: Value = api
        .create_subresource("binding", &name, &PostParams::default(), &body)
        .await
        .with_context(|| format!("binding {ns}/{name} to {node}"))?;
    crate::note!("{COMPONENT}: bound {ns}/{name} to {node}");
    Ok(())
}

async fn mark_unschedulable(client: &Client, p: &Pod, message: &str) -> Result<()> {
    let ns = p.metadata.namespace.clone().unwrap_or_default();
    let name = p.metadata.name.clone().unwrap_or_default();
    let mut pod = p.clone();
    let status = pod.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != "PodScheduled");
    conds.push(PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some("Unschedulable".into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(jiff::Timestamp::now())),
        ..PodCondition::default()
    });
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.replace_status(&name, &PostParams::default(), &pod)
        .await
        .with_context(|| format!("marking {ns}/{name} unschedulable"))?;
    crate::note!("{COMPONENT}: {ns}/{name} is unschedulable: {message}");
    Ok(())
}

/// One pass over the pending pods.
async fn cycle(client: &Client) -> Result<()> {
    let mut all = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing pods")?
        .items;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing nodes")?
        .items;
    let mut pending: Vec<Pod> = all
        .iter()
        .filter(|p| place::wants_scheduling(p))
        .cloned()
        .collect();
    pending.sort_by_key(|p| {
        let prio = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (Reverse(prio), created, p.metadata.name.clone())
    });
    let mut failed = Vec::new();
    for p in &pending {
        let r = match place::place(p, &nodes, &all) {
            Decision::Bind(node) => {
                let r = bind(client, p, &node).await;
                // Count it where it went, so the next pod of the same owner spreads.
                if r.is_ok()
                    && let Some(s) = all
                        .iter_mut()
                        .find(|o| o.metadata.uid == p.metadata.uid)
                        .and_then(|o| o.spec.as_mut())
                {
                    s.node_name = Some(node);
                }
                r
            }
            Decision::Unschedulable(msg) if !already_marked(p, &msg) => {
                mark_unschedulable(client, p, &msg).await
            }
            Decision::Unschedulable(_) => Ok(()),
        };
        if let Err(e) = r {
            failed.push(e);
        }
    }
    match failed.first() {
        None => Ok(()),
        Some(e) => Err(anyhow!(
            "{} of {} pods failed, first: {e:#}",
            failed.len(),
            pending.len()
        )),
    }
}

async fn schedule_loop(client: Client) -> Result<()> {
    let mut log = client::ErrorLog::new(COMPONENT);
    let mut tick = tokio::time::interval(RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = cycle(&client).await;
        log.record("schedule", &r);
    }
}

/// Runs until `shutdown` resolves (then `Ok`), or until the lease is lost (`Err`).
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    leader::run_component(cfg, COMPONENT, "kube-scheduler", schedule_loop, shutdown).await
}
