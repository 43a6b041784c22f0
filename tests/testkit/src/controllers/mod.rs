//! `fake-controller-manager`: a kube-controller-manager double, so that a self-hosted
//! control plane's Deployments and DaemonSets actually get pods in tests on machines
//! where no real one can run. It takes kube-controller-manager's flags
//! ([`Config::from_args`] with [`config::CONTROLLER_MANAGER`]), elects a leader on the
//! Lease `kube-system/kube-controller-manager` exactly as the real one does
//! (`leader.rs`), and then runs, as the leader only:
//!
//! - the Deployment controller (`deployment.rs`): ReplicaSets `<name>-<pod-template-hash>`;
//! - the ReplicaSet controller (`replicaset.rs`): pods without `nodeName`, for the scheduler;
//! - the DaemonSet controller (`daemonset.rs`): one pod per eligible node, with
//!   `spec.nodeName` set directly, as before Kubernetes 1.12, so daemons need no scheduler;
//! - the pod GC and the garbage collector (`gc.rs`): pods of vanished Nodes, dependents of
//!   deleted owners;
//! - the node lifecycle controller (`nodelifecycle.rs`), every `--node-monitor-period`:
//!   nodes whose kubelet stopped renewing its Lease for `--node-monitor-grace-period`
//!   become `Ready=Unknown`, get the `unreachable` taints, and their pods lose Ready;
//! - the taint eviction controller (`tainteviction.rs`): pods not tolerating a node's
//!   `NoExecute` taints are deleted (at once, or after their `tolerationSeconds`);
//! - with `--root-ca-file`, the root CA publisher (`rootca.rs`): `kube-root-ca.crt` in
//!   every namespace, which the pods' token volumes read.
//!
//! The controllers are pure functions from one consistent listing ([`world::World`]) to
//! writes ([`world::Action`]); [`run`] is the thin executor. It is level-triggered: every
//! [`RESYNC`] it lists everything afresh and reconciles, so there are no watch caches to
//! go stale, a lost write is redone next cycle, and an api-server restart costs one
//! logged line and a few failed cycles (never an exit, unless the lease is lost).
//!
//! Not done (differences from the real component): no StatefulSets, Jobs, CronJobs, endpoints,
//! service accounts, tokens, certificates, namespaces or node IPAM; no events; no
//! ControllerRevisions; `/healthz` is plain HTTP without authentication; the flags in
//! [`config::CONTROLLER_MANAGER`]`.ignored` are accepted and ignored; list cost grows
//! with the cluster (fine for tests, not for real clusters).

pub mod client;
pub mod config;
pub mod credentials;
pub mod daemonset;
pub mod deployment;
pub mod fit;
pub mod gc;
pub mod hash;
pub mod health;
pub mod leader;
pub mod nodelifecycle;
pub mod nodetaints;
pub mod pods;
pub mod replicaset;
pub mod rootca;
pub mod selectors;
pub mod tainteviction;
pub mod world;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;

pub use config::Config;
use credentials::Credentials;
use world::{Action, World};

const COMPONENT: &str = "fake-controller-manager";
/// How often everything is listed and reconciled.
pub const RESYNC: Duration = Duration::from_millis(500);

/// Every controller's writes for one listing, garbage collection first.
#[must_use]
pub fn plan_all(w: &World, missing: &mut gc::Missing, now: Instant, wall: &Time) -> Vec<Action> {
    let mut out = gc::orphaned_pods(w, missing, now, gc::QUARANTINE);
    out.extend(gc::abandoned_dependents(w));
    for d in &w.deployments {
        out.extend(deployment::plan(d, &w.replica_sets, wall));
    }
    for rs in &w.replica_sets {
        out.extend(replicaset::plan(rs, &w.pods));
    }
    for ds in &w.daemon_sets {
        out.extend(daemonset::plan(ds, &w.nodes, &w.pods));
    }
    out
}

/// Performs every action, each with its controller's client (`credentials.rs`); an
/// error is reported but does not stop the others, so one object the api-server refuses
/// cannot block the rest.
pub async fn apply(creds: &Credentials, component: &str, actions: Vec<Action>) -> Result<()> {
    let total = actions.len();
    let mut failed = Vec::new();
    for a in actions {
        if let Err(e) = execute_in(creds, component, a).await {
            failed.push(e);
        }
    }
    match failed.first() {
        None => Ok(()),
        Some(e) => Err(anyhow!(
            "{} of {total} writes failed, first: {e:#}",
            failed.len()
        )),
    }
}

/// One action with its controller's client; a refused token is forgotten so the next
/// attempt requests a new one.
async fn execute_in(creds: &Credentials, component: &str, a: Action) -> Result<()> {
    let controller = credentials::controller_of(&a);
    let r = match creds.client(controller).await {
        Ok(client) => world::execute(&client, component, a).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &r
        && e.downcast_ref::<kube::Error>()
            .is_some_and(|k| matches!(k, kube::Error::Api(s) if s.code == 401))
    {
        creds.forget(controller).await;
    }
    r
}

async fn execute_as(creds: &Credentials, a: Action) -> Result<()> {
    execute_in(creds, COMPONENT, a).await
}

/// One node lifecycle pass: node status first, then taints, then the pods of nodes
/// that went down. A node whose status update failed gets nothing else this pass, as
/// upstream skips it; a node whose pods could not all be marked is retried.
async fn lifecycle_pass(
    creds: &Credentials,
    lc: &mut nodelifecycle::Lifecycle,
    pass: nodelifecycle::Pass,
) -> Result<()> {
    let mut failed_nodes = std::collections::BTreeSet::new();
    let mut first: Option<anyhow::Error> = None;
    for a in pass.writes {
        let node = match &a {
            Action::NodeStatus(n) => n.metadata.name.clone().unwrap_or_default(),
            Action::NodeTaints { name, .. } => name.clone(),
            _ => String::new(),
        };
        if failed_nodes.contains(&node) {
            continue;
        }
        if let Err(e) = execute_as(creds, a).await {
            failed_nodes.insert(node);
            first.get_or_insert(e);
        }
    }
    for (node, marks) in pass.mark {
        if failed_nodes.contains(&node) {
            lc.marked(&node, false);
            continue;
        }
        let mut ok = true;
        for a in marks {
            if let Err(e) = execute_as(creds, a).await {
                ok = false;
                first.get_or_insert(e);
            }
        }
        lc.marked(&node, ok);
    }
    first.map_or(Ok(()), Err)
}

async fn control_loop(
    client: Client,
    creds: Credentials,
    node_flags: config::NodeFlags,
    root_ca: Option<String>,
) -> Result<()> {
    let mut log = client::ErrorLog::new(COMPONENT);
    let mut ca_log = client::ErrorLog::new(COMPONENT);
    let mut lc_log = client::ErrorLog::new(COMPONENT);
    let mut lifecycle = nodelifecycle::Lifecycle::new(node_flags);
    let mut evictions = tainteviction::Evictions::default();
    let mut next_monitor = Instant::now();
    let mut missing = gc::Missing::new();
    let mut tick = tokio::time::interval(RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = async {
            let w = World::list(&client).await?;
            let wall = Time(jiff::Timestamp::now());
            let mut actions = plan_all(&w, &mut missing, Instant::now(), &wall);
            actions.extend(evictions.plan(&w.nodes, &w.pods, wall.0));
            if Instant::now() >= next_monitor {
                next_monitor = Instant::now() + node_flags.monitor_period;
                let pass = lifecycle.monitor(&w.nodes, &w.node_leases, &w.pods, wall.0);
                let r = lifecycle_pass(&creds, &mut lifecycle, pass).await;
                lc_log.record("node lifecycle", &r);
            }
            apply(&creds, COMPONENT, actions).await
        }
        .await;
        log.record("sync", &r);
        if let Some(ca) = &root_ca {
            let r = async {
                let writer = creds.client("root-ca-cert-publisher").await?;
                rootca::sync(&client, &writer, ca).await
            }
            .await;
            ca_log.record("root CA publisher", &r);
        }
    }
}

/// Runs until `shutdown` resolves (then `Ok`), or until the lease is lost (`Err`).
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let node_flags = cfg.node;
    let root_ca = match &cfg.root_ca_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading --root-ca-file {}", p.display()))?,
        ),
        None => None,
    };
    let base = if cfg.use_service_account_credentials {
        Some(client::config(cfg.kubeconfig.as_deref()).await?)
    } else {
        None
    };
    leader::run_component(
        cfg,
        COMPONENT,
        "kube-controller-manager",
        move |client: Client| {
            let creds = Credentials::new(client.clone(), base.clone());
            control_loop(client, creds, node_flags, root_ca.clone())
        },
        shutdown,
    )
    .await
}
