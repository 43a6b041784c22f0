//! The probes `ensure` decides on: the kubelet, the api-server and its self-hosted
//! components, etcd, and the backups on disk. Each returns what [`crate::ensure::decide`]
//! needs, with a reason worth printing when something is down; none of them changes
//! anything.
//!
//! "Up" for a component means what it means to `start`: Ready on a node whose kubelet
//! is alive, with a status known to be current (bootkube #601) — a Ready left in etcd
//! from before a reboot is not health.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::backup::catalog;
use crate::ensure::decide::{Apiserver, Backup, Kubelet};
use crate::source::{error_chain, etcd::EtcdConfig};
use crate::start::cluster;
use crate::start::observe::{self, Required, Rules, Stage};

/// `GET <url>` answered 200 (the kubelet's `--healthz-port`, plain HTTP on the node).
pub async fn kubelet(url: &str, timeout: Duration) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let path = uri.path().to_string();
    // The client's base URL is scheme://host:port; the path is the request's.
    let base = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
        _ => return Err(format!("{url}: not an absolute http URL")),
    };
    let base: http::Uri = base.parse().map_err(|e| format!("{url}: {e}"))?;
    let mut config = kube::Config::new(base);
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    let client = kube::Client::try_from(config).map_err(|e| format!("{url}: {e}"))?;
    cluster::health(&client, &path)
        .await
        .map_err(|e| format!("{}: {e}", base_of(url)))
}

/// The kubelet by its healthz port and, given a D-Bus connection and its unit's name,
/// by systemd's view of the unit: a failed or stopped unit is [`Kubelet::Failed`]
/// (waiting will not help), and a healthz failure says what state the unit is in.
/// A kubelet that answers is healthy whatever systemd says (it may not run under
/// systemd at all).
pub async fn kubelet_health(
    url: &str,
    timeout: Duration,
    systemd: Option<(&zbus::Connection, &str)>,
) -> Kubelet {
    let why = match kubelet(url, timeout).await {
        Ok(()) => return Kubelet::Healthy,
        Err(why) => why,
    };
    let Some((conn, unit)) = systemd else {
        return Kubelet::Down(why);
    };
    match crate::systemd::dbus::unit_state(conn, unit).await {
        Ok(state) if state.is_down_for_good() => {
            Kubelet::Failed(format!("{why}; systemd: {unit} is {state}"))
        }
        Ok(state) => Kubelet::Down(format!("{why}; systemd: {unit} is {state}")),
        Err(e) => Kubelet::Down(format!("{why}; {e}")),
    }
}

/// `url` without its path, since [`cluster::health`]'s reason names the path.
fn base_of(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| &url[..i + 3 + j]))
        .unwrap_or(url)
}

/// Tracks, across probes, since when each pod has been seen Ready: what lets a status
/// from before `ensure` began be believed (see `start::observe`).
#[derive(Debug)]
pub struct ReadyTracker {
    since: Timestamp,
    ready_since: BTreeMap<String, Timestamp>,
}

impl ReadyTracker {
    pub fn new(since: Timestamp) -> Self {
        ReadyTracker {
            since,
            ready_since: BTreeMap::new(),
        }
    }
}

/// `/readyz`, then each required component's stage.
pub async fn apiserver(
    client: &kube::Client,
    required: &[Required],
    rules: &Rules,
    tracker: &mut ReadyTracker,
) -> Apiserver {
    match cluster::health_checked(client, "/readyz").await {
        Ok(()) => {}
        Err(e) if e.denied => return Apiserver::Denied(e.message),
        Err(e) => return Apiserver::Down(e.message),
    }
    let mut namespaces: Vec<String> = required.iter().map(|r| r.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let world = match cluster::world_checked(client, &namespaces).await {
        Ok(w) => w,
        Err(e) if e.denied => return Apiserver::Denied(format!("/api/v1: {e}")),
        Err(e) => return Apiserver::Down(format!("/api/v1 (listing pods and nodes): {e}")),
    };
    let now = Timestamp::now();
    let live = observe::live_nodes(&world, now, rules.node_grace);
    observe::track_ready(&mut tracker.ready_since, &world, &live, now);
    let missing = required
        .iter()
        .filter_map(|req| {
            let v = observe::assess(
                req,
                &world,
                &live,
                tracker.since,
                now,
                rules,
                &tracker.ready_since,
            );
            (v.stage != Stage::Ready).then(|| format!("{req}: {}", v.detail))
        })
        .collect();
    Apiserver::Up { missing }
}

/// etcd answers a read of the api-server's prefix (which is what `recover` needs, so
/// a member that is up but refuses our certificate counts as down).
pub async fn etcd(cfg: &EtcdConfig, etcd_prefix: &str) -> Result<(), String> {
    let mut client = crate::source::etcd::connect(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let opts = etcd_client::GetOptions::new()
        .with_prefix()
        .with_count_only();
    let endpoint = cfg.endpoints.join(",");
    match tokio::time::timeout(cfg.request_timeout, client.get(etcd_prefix, Some(opts))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("etcd {endpoint}: {}", error_chain(&e))),
        Err(_) => Err(format!(
            "etcd {endpoint}: no answer within {:?}",
            cfg.request_timeout
        )),
    }
}

/// The newest backup in `dir` whose files still match their sha256; damaged ones are
/// logged and passed over.
pub fn newest_backup(dir: &Path) -> Result<Backup, String> {
    let found = catalog::scan(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in &found {
        let checked = f
            .manifest
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|m| catalog::verify(&f.dir, m).map(|()| m));
        match checked {
            Ok(m) => {
                return Ok(Backup {
                    snapshot: f.dir.join(&m.snapshot.path),
                    revision: m.revision,
                    self_hosted_etcd: m.self_hosted_etcd,
                });
            }
            Err(why) => tracing::warn!(backup = %f.dir.display(), "passed over: {why}"),
        }
    }
    Err(format!("no whole backup in {}", dir.display()))
}
