//! `kubeboot start`: boot a control plane from an asset dir through the kubelet's static
//! pods, create the self-hosted objects, wait for them, pivot with a way back, clean up.
//!
//! The order of steps is bootkube's (docs/bootkube-notes.md §2); what differs is each step's
//! contract. Install is atomic and idempotent ([`install`]), so a `start` killed at any
//! point converges when run again. Waiting trusts only live nodes and fresh statuses
//! ([`observe`]). The pivot goes one component at a time: its bootstrap manifest is
//! removed, its self-hosted pods must become Ready within `--pivot-timeout`, and if they
//! do not, the bootstrap manifest is put back and `start` fails. So the node always
//! runs one of the two copies ([`pivot`]).

pub mod apply;
pub mod cluster;
pub mod etcd;
pub mod install;
pub mod manifests;
pub mod node_role;
pub mod observe;
pub mod pivot;
pub mod plan;
pub mod progress;
#[cfg(test)]
pub(crate) mod test_objects;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::fsutil::{self, FsError};
use crate::kubeclient::{self, ClientError};
use observe::{Required, Rules, Stage};
use plan::{Plan, PlanError};
use progress::Progress;

/// bootkube's `--required-pods` default.
pub const DEFAULT_REQUIRED: &str = "kube-system/pod-checkpointer,kube-system/kube-apiserver,kube-system/kube-scheduler,kube-system/kube-controller-manager";

#[derive(Debug, Clone)]
pub struct StartOptions {
    pub asset_dir: PathBuf,
    /// Overrides `<asset-dir>/auth/kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    pub pod_manifest_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub required: Vec<Required>,
    /// Deadline for everything up to the pivot.
    pub timeout: Duration,
    /// How long one component may take to become Ready after its bootstrap pod goes.
    pub pivot_timeout: Duration,
    pub request_timeout: Duration,
    pub poll: Duration,
    pub cleanup_on_failure: bool,
    pub rules: Rules,
    /// Host path of the self-hosted etcd's data dir, overriding `etcd/restore.json`.
    pub etcd_data_dir: Option<PathBuf>,
    /// Revisions to move a restored etcd on by (see [`etcd`]).
    pub etcd_revision_bump: u64,
    /// Earlier bootstrap secrets dirs to keep (they hold keys).
    pub keep_moved_aside: usize,
    /// The node `start` runs on: a pivot is proven only by a pod on it.
    pub node_name: String,
}

/// What a successful `start` did.
#[derive(Debug)]
pub struct Summary {
    pub elapsed: Duration,
    /// Components moved from their bootstrap pod to the self-hosted one.
    pub pivoted: Vec<String>,
    /// Required components that had no bootstrap pod and are up.
    pub others: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Input(String),
    #[error("etcd {0}")]
    Etcd(String),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error("gave up after {waited:.0?} waiting for {what}: {last}{left}")]
    Deadline {
        what: String,
        waited: Duration,
        last: String,
        left: String,
    },
    #[error("pivot of {component} failed: {reason}; its bootstrap pod was put back{left}")]
    Pivot {
        component: String,
        reason: String,
        left: String,
    },
}

impl StartError {
    /// Whether the asset dir or flags were at fault (exit 2) rather than the cluster.
    pub fn is_input(&self) -> bool {
        matches!(self, StartError::Plan(_) | StartError::Input(_))
            || matches!(self, StartError::Client(ClientError::Config { .. }))
    }
}

/// Polls `probe` every `poll` until it yields `Ok`, or fails with a [`StartError::Deadline`]
/// naming `what` and the last reason. `probe` also reports the reason to `progress`.
pub(crate) async fn wait_for<T>(
    what: &str,
    deadline: Instant,
    poll: Duration,
    progress: &mut Progress,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, StartError> {
    let begun = Instant::now();
    loop {
        let reason = match probe().await {
            Ok(v) => return Ok(v),
            Err(reason) => reason,
        };
        progress.waiting(&format!("waiting for {what}: {reason}"));
        if Instant::now() + poll > deadline {
            return Err(StartError::Deadline {
                what: what.to_string(),
                waited: begun.elapsed(),
                last: reason,
                left: String::new(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// Runs `start`. On an error before the pivot, the bootstrap control plane is left in
/// place (or removed with `cleanup_on_failure`) and the error says which.
pub async fn run(opts: &StartOptions, progress: &mut Progress) -> Result<Summary, StartError> {
    let mut plan = plan::read(&opts.asset_dir, opts.kubeconfig.as_deref())?;
    // Built (not connected) before anything is installed, so a kubeconfig that does not
    // parse, or names a missing file, stops `start` with the node untouched.
    let (client, endpoint) = kubeclient::from_kubeconfig(
        &plan.kubeconfig_path,
        opts.request_timeout,
        opts.request_timeout,
    )
    .await?;
    let since = Timestamp::now();
    let deadline = Instant::now() + opts.timeout;
    // A start killed mid-write left temp copies of keys; nothing else would remove them.
    // The checkpointer's pod writes the manifest dir too, from another PID namespace.
    let shared = Duration::from_secs(60);
    progress.phase("install");
    for (dir, min_age) in [
        (fsutil::parent_of(&opts.secrets_dir), Duration::ZERO),
        (opts.pod_manifest_dir.as_path(), shared),
    ] {
        for stale in fsutil::remove_stale_temps(dir, min_age)? {
            progress.warn(&format!(
                "removed {} (left by a killed write)",
                stale.display()
            ));
        }
    }
    let outcome = install::install_secrets(
        &plan.tls_dir,
        &plan.kubeconfig,
        plan.etcd_dir.as_deref(),
        &opts.secrets_dir,
    )?;
    report(progress, &opts.secrets_dir.display().to_string(), &outcome);
    if matches!(outcome, install::Outcome::Replaced(_)) {
        for old in fsutil::prune_asides(&opts.secrets_dir, opts.keep_moved_aside)? {
            progress.step(&format!(
                "removed {} (keeping the {} newest earlier copies, --keep-moved-aside)",
                old.display(),
                opts.keep_moved_aside
            ));
        }
    }
    // Pod UID → first of an unbroken run of Ready observations, kept across the steps
    // so a pod already confirmed while waiting need not settle again in its pivot.
    let mut ready_since = BTreeMap::new();
    let result = async {
        restore_etcd(&mut plan, opts, deadline, progress).await?;
        install_bootstrap(&plan, opts, progress)?;
        let api = Api {
            client: &client,
            endpoint: &endpoint,
        };
        boot(
            &plan,
            opts,
            &api,
            since,
            deadline,
            &mut ready_since,
            progress,
        )
        .await
    }
    .await;
    match result {
        Ok(()) => {}
        Err(e) if opts.cleanup_on_failure => {
            remove_bootstrap(&plan, opts, progress)?;
            return Err(with_left(
                e,
                "; --cleanup-on-failure removed the bootstrap pods",
            ));
        }
        Err(e) => {
            let left = format!(
                "; the bootstrap pods stay in {} for inspection (--cleanup-on-failure removes them)",
                opts.pod_manifest_dir.display()
            );
            return Err(with_left(e, &left));
        }
    };
    let pivoted = pivot::pivot_all(&plan, opts, &client, &mut ready_since, progress).await?;
    remove_bootstrap(&plan, opts, progress)?;
    let others = opts
        .required
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| !pivoted.contains(n))
        .collect();
    Ok(Summary {
        elapsed: progress.elapsed(),
        pivoted,
        others,
    })
}

/// With `etcd/` in the asset dir: bootstrap-etcd first, restored and moved on before
/// any api-server is installed; its installed bytes replace the plan's.
async fn restore_etcd(
    plan: &mut Plan,
    opts: &StartOptions,
    deadline: Instant,
    progress: &mut Progress,
) -> Result<(), StartError> {
    let Some(r) = plan.etcd_restore.clone() else {
        return Ok(());
    };
    progress.phase("etcd-restore");
    let Some(b) = plan
        .bootstrap
        .iter_mut()
        .find(|b| b.component() == plan::ETCD)
    else {
        return Ok(()); // plan::read refuses this
    };
    b.bytes = etcd::restore(&r, b, opts, deadline, progress).await?;
    Ok(())
}

fn with_left(e: StartError, note: &str) -> StartError {
    match e {
        StartError::Deadline {
            what, waited, last, ..
        } => StartError::Deadline {
            what,
            waited,
            last,
            left: note.to_string(),
        },
        other => other,
    }
}

fn install_bootstrap(
    plan: &Plan,
    opts: &StartOptions,
    progress: &mut Progress,
) -> Result<(), StartError> {
    progress.phase("install");
    for b in &plan.bootstrap {
        let outcome = install::install_manifest(&opts.pod_manifest_dir, &b.file, &b.bytes)?;
        report(
            progress,
            &opts.pod_manifest_dir.join(&b.file).display().to_string(),
            &outcome,
        );
    }
    Ok(())
}

fn report(progress: &mut Progress, path: &str, outcome: &install::Outcome) {
    match outcome {
        install::Outcome::Written => progress.step(&format!("installed {path}")),
        install::Outcome::Kept => progress.step(&format!("{path} already in place")),
        install::Outcome::Replaced(old) => progress.warn(&format!(
            "installed {path}; the different copy that was there is now {}",
            old.display()
        )),
    }
}

/// Removes what [`install_bootstrap`] put on the node, keeping anyone else's files.
fn remove_bootstrap(
    plan: &Plan,
    opts: &StartOptions,
    progress: &mut Progress,
) -> Result<(), StartError> {
    progress.phase("cleanup");
    for b in &plan.bootstrap {
        install::remove_manifest(&opts.pod_manifest_dir, &b.file, &b.bytes)?;
    }
    install::remove_secrets(&opts.secrets_dir)?;
    progress.step(&format!(
        "removed the bootstrap pods and {}",
        opts.secrets_dir.display()
    ));
    Ok(())
}

/// The api-server `start` talks to.
struct Api<'a> {
    client: &'a kube::Client,
    endpoint: &'a str,
}

/// Steps 3–5: the api-server answers, `manifests/` exists in it, and every required
/// component has a pod on a live node.
async fn boot(
    plan: &Plan,
    opts: &StartOptions,
    api: &Api<'_>,
    since: Timestamp,
    deadline: Instant,
    ready_since: &mut BTreeMap<String, Timestamp>,
    progress: &mut Progress,
) -> Result<(), StartError> {
    let (client, endpoint) = (api.client, api.endpoint);
    progress.phase("wait-apiserver");
    progress.step(&format!("waiting for the api-server at {endpoint}"));
    wait_api(client, endpoint, deadline, opts.poll, progress).await?;
    if let Some(phases) = &plan.manifests {
        progress.phase("create");
        progress.step("creating the self-hosted objects from manifests/");
        let apply_opts = apply::ApplyOptions::until(deadline);
        let mut say = |line: &str| progress.note(line);
        let summary = apply::create_all(client, phases, &apply_opts, &mut say).await?;
        progress.step(&format!(
            "self-hosted objects: {} created, {} updated, {} unchanged",
            summary.created, summary.updated, summary.unchanged
        ));
    }
    let namespaces = namespaces(&opts.required);
    let node = opts.node_name.as_str();
    progress.phase("label-node");
    let what = format!("node {node} to register and carry the control plane's node labels");
    let added = wait_for(&what, deadline, opts.poll, progress, async || {
        let wanted = node_role::wanted(client, &opts.required, &namespaces).await?;
        if wanted.is_empty() {
            return Ok(wanted);
        }
        node_role::label(client, node, &wanted).await
    })
    .await?;
    if !added.is_empty() {
        let list: Vec<String> = added.iter().map(|(k, v)| format!("{k}={v}")).collect();
        progress.step(&format!(
            "labelled node {node} {} (the self-hosted control plane selects it; a kubelet may not set it on itself)",
            list.join(",")
        ));
    }
    let twinned: Vec<&str> = plan
        .bootstrap
        .iter()
        .filter(|b| b.parent.is_some())
        .map(|b| b.component())
        .collect();
    let names: Vec<String> = opts.required.iter().map(ToString::to_string).collect();
    progress.phase("wait-selfhosted");
    progress.step(&format!(
        "waiting for the self-hosted pods: {}",
        names.join(", ")
    ));
    wait_for(
        "the self-hosted control plane",
        deadline,
        opts.poll,
        progress,
        async || {
            {
                let w = cluster::world(client, &namespaces).await?;
                let now = Timestamp::now();
                let live = observe::live_nodes(&w, now, opts.rules.node_grace);
                observe::track_ready(ready_since, &w, &live, now);
                let pending: Vec<String> = opts
                    .required
                    .iter()
                    .filter_map(|r| {
                        // A component with a bootstrap twin cannot run before the pivot
                        // (they share host ports); it only has to be placed on a live node.
                        let need = if twinned.contains(&r.name.as_str()) {
                            Stage::Scheduled
                        } else {
                            Stage::Ready
                        };
                        let v = observe::assess(r, &w, &live, since, now, &opts.rules, ready_since);
                        (v.stage < need).then_some(v.detail)
                    })
                    .collect();
                if pending.is_empty() {
                    Ok(())
                } else {
                    Err(pending.join("; "))
                }
            }
        },
    )
    .await?;
    Ok(())
}

pub(crate) fn namespaces(required: &[Required]) -> Vec<String> {
    let mut ns: Vec<String> = required.iter().map(|r| r.namespace.clone()).collect();
    ns.sort();
    ns.dedup();
    ns
}

pub(crate) async fn wait_api(
    client: &kube::Client,
    endpoint: &str,
    deadline: Instant,
    poll: Duration,
    progress: &mut Progress,
) -> Result<(), StartError> {
    let what = format!("the api-server at {endpoint} (/readyz, then /healthz)");
    wait_for(&what, deadline, poll, progress, async || {
        cluster::health(client, "/readyz").await?;
        cluster::health(client, "/healthz").await
    })
    .await
}
