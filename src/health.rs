//! The probes `ensure` decides on: the kubelet, the api-server and its self-hosted
//! components, etcd, and the backups on disk. Each returns what [`crate::ensure::decide`]
//! needs, with a reason worth printing when something is down; none of them changes
//! anything.
//!
//! "Up" for a component means what it means to `start`: Ready on a node whose kubelet
//! is alive, with a status known to be current (bootkube #601) — a Ready left in etcd
//! from before a reboot is not health.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::api::{Api, ListParams};

use crate::backup::catalog;
use crate::backup::crypt::Identity;
use crate::backup::inventory::{self, Problem};
use crate::ensure::components::{self, ReadyTracker};
use crate::ensure::decide::{Apiserver, Backup, Kubelet};
use crate::ensure::{clock, witness};
use crate::source::{error_chain, etcd::EtcdConfig};
use crate::start::cluster::{self, ApiError};
use crate::start::observe::{Required, Rules, World};

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
    // The kubelet's healthz port is plain http: no trust store needed, none loaded.
    let mut config = crate::kubeclient::anonymous_config(base);
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

/// `/readyz`: `Ok` with the api-server's clock offset from this node's (from its
/// `Date` header; `None` without one), else why not, telling a refusal (401/403)
/// apart. Its own request rather than `start::cluster::health_checked`, for the header.
async fn readyz(client: &kube::Client) -> Result<Option<SignedDuration>, ApiError> {
    let down = |message: String| ApiError {
        denied: false,
        message,
    };
    let req = http::Request::get("/readyz")
        .body(kube::client::Body::empty())
        .map_err(|e| down(e.to_string()))?;
    let resp = client
        .send(req)
        .await
        .map_err(|e| down(format!("/readyz: {}", error_chain(&e))))?;
    let local = Timestamp::now();
    let status = resp.status();
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        return Err(ApiError {
            denied: true,
            message: format!("/readyz: {status}"),
        });
    }
    if !status.is_success() {
        return Err(down(format!("/readyz: {status}")));
    }
    let date = resp
        .headers()
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok());
    Ok(match date.map(|d| clock::offset(d, local)) {
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            tracing::warn!("{e}; node leases are judged by this node's clock");
            None
        }
        None => None,
    })
}

/// The required components whose DaemonSet or Deployment exists in the api-server.
async fn declared(
    client: &kube::Client,
    required: &[Required],
) -> Result<BTreeSet<Required>, ApiError> {
    let mut found = BTreeSet::new();
    let err = |what: &str, e: kube::Error| ApiError {
        denied: matches!(&e, kube::Error::Api(s) if s.code == 401 || s.code == 403),
        message: format!("list {what}: {}", error_chain(&e)),
    };
    let mut namespaces: Vec<&str> = required.iter().map(|r| r.namespace.as_str()).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        let names = |metas: Vec<Option<String>>| metas.into_iter().flatten().collect::<Vec<_>>();
        let lp = ListParams::default();
        let ds = Api::<DaemonSet>::namespaced(client.clone(), ns)
            .list_metadata(&lp)
            .await
            .map_err(|e| err("daemonsets", e))?;
        let deploy = Api::<Deployment>::namespaced(client.clone(), ns)
            .list_metadata(&lp)
            .await
            .map_err(|e| err("deployments", e))?;
        let all = names(ds.items.into_iter().map(|m| m.metadata.name).collect())
            .into_iter()
            .chain(names(
                deploy.items.into_iter().map(|m| m.metadata.name).collect(),
            ));
        for name in all {
            found.extend(
                required
                    .iter()
                    .filter(|r| r.namespace == ns && r.name == name)
                    .cloned(),
            );
        }
    }
    Ok(found)
}

/// This node's container runtime, asked which containers run now so that the statuses
/// naming them are believed at once ([`crate::ensure::witness`]).
pub struct Witness {
    runtime: crate::cri::Runtime,
    node: String,
    said: bool,
}

impl Witness {
    pub fn new(socket: &Path, node: &str, timeout: Duration) -> Witness {
        Witness {
            runtime: crate::cri::Runtime::new(socket, timeout),
            node: node.to_string(),
            said: false,
        }
    }

    /// Fills `world.confirmed`; a runtime that does not answer vouches for nothing
    /// (said once: the statuses then wait out `--status-settle`).
    async fn vouch(&mut self, world: &mut World) {
        match self.runtime.containers(None).await {
            Ok(running) => {
                world.confirmed = witness::confirmed(&world.pods, &self.node, &running);
            }
            Err(e) if !self.said => {
                self.said = true;
                tracing::info!(
                    "{e}; Ready statuses from before this run are believed after --status-settle and a Lease renewal"
                );
            }
            Err(_) => {}
        }
    }
}

/// `/readyz`, then each required component: Ready, un-Ready or gone (see
/// [`crate::ensure::components`]), judged at the api-server's time. Also returns the
/// api-server's clock offset when it answered with a `Date`.
pub async fn apiserver(
    client: &kube::Client,
    required: &[Required],
    rules: &Rules,
    tracker: &mut ReadyTracker,
    witness: Option<&mut Witness>,
) -> (Apiserver, Option<SignedDuration>) {
    let offset = match readyz(client).await {
        Ok(o) => o,
        Err(e) if e.denied => return (Apiserver::Denied(e.message), None),
        Err(e) => return (Apiserver::Down(e.message), None),
    };
    let mut namespaces: Vec<String> = required.iter().map(|r| r.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    let listed = match cluster::world_checked(client, &namespaces).await {
        Ok(w) => declared(client, required).await.map(|d| (w, d)),
        Err(e) => Err(e),
    };
    let (mut world, declared) = match listed {
        Ok(x) => x,
        Err(e) if e.denied => return (Apiserver::Denied(format!("/api/v1: {e}")), offset),
        Err(e) => {
            return (
                Apiserver::Down(format!("/api/v1 (listing pods and nodes): {e}")),
                offset,
            );
        }
    };
    if let Some(w) = witness {
        w.vouch(&mut world).await;
    }
    let now = clock::server_now(Timestamp::now(), offset);
    let a = components::assess(required, &world, &declared, now, rules, tracker);
    (
        Apiserver::Up {
            unready: a.unready,
            gone: a.gone,
        },
        offset,
    )
}

/// etcd answers a read of the api-server's prefix (which is what `recover` needs, so
/// a member that is up but refuses our certificate counts as down).
pub async fn etcd(cfg: &EtcdConfig, etcd_prefix: &str) -> Result<(), String> {
    etcd_keys(cfg, etcd_prefix).await.map(|_| ())
}

/// [`etcd`], with how many keys it holds under the prefix.
pub async fn etcd_keys(cfg: &EtcdConfig, etcd_prefix: &str) -> Result<i64, String> {
    let mut client = crate::source::etcd::connect(cfg)
        .await
        .map_err(|e| e.to_string())?;
    let opts = etcd_client::GetOptions::new()
        .with_prefix()
        .with_count_only();
    let endpoint = cfg.endpoints.join(",");
    match tokio::time::timeout(cfg.request_timeout, client.get(etcd_prefix, Some(opts))).await {
        Ok(Ok(r)) => Ok(r.count()),
        Ok(Err(e)) => Err(format!("etcd {endpoint}: {}", error_chain(&e))),
        Err(_) => Err(format!(
            "etcd {endpoint}: no answer within {:?}",
            cfg.request_timeout
        )),
    }
}

/// The newest backup in `dir` that opens whole; damaged ones are logged and passed
/// over. An encrypted one is opened with `identity` (every member decrypted and checked
/// against `backup.json`), and its [`Backup::snapshot`] is then the archive, which the
/// restore decrypts again (src/ensure/recovery.rs).
///
/// An encrypted newest backup that cannot be opened — no identity, or one that opens
/// nothing — stops the search: passing it over for an older plain one would restore
/// an older past than the operator kept.
pub fn newest_backup(dir: &Path, identity: Option<&Identity>) -> Result<Backup, String> {
    find_backup(dir, identity)?.ok_or_else(|| format!("no whole backup in {}", dir.display()))
}

/// [`newest_backup`], with `Ok(None)` when `dir` holds no whole backup at all (only
/// then may `ensure` look further, in the object store).
pub fn find_backup(dir: &Path, identity: Option<&Identity>) -> Result<Option<Backup>, String> {
    let found = catalog::scan(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in &found {
        let m = match &f.manifest {
            Ok(m) => m,
            Err(why) => {
                tracing::warn!(backup = %f.dir.display(), "passed over: {why}");
                continue;
            }
        };
        match inventory::open(&f.dir, m, identity, false) {
            Ok(_) => {
                return Ok(Some(Backup {
                    snapshot: f.dir.join(m.data_file()),
                    revision: m.revision,
                    self_hosted_etcd: m.self_hosted_etcd,
                    from: None,
                }));
            }
            Err(Problem::Damaged(why)) => {
                tracing::warn!(backup = %f.dir.display(), "passed over: {why}")
            }
            Err(Problem::Locked(why)) => return Err(locked(&f.dir, identity, &why)),
        }
    }
    Ok(None)
}

/// Why an encrypted newest backup stops `ensure`, in one line naming the identity file
/// (never its contents) or saying to give one.
fn locked(backup: &Path, identity: Option<&Identity>, why: &str) -> String {
    let (cannot, fix) = match identity {
        None => (
            "no --identity was given".to_string(),
            "give ensure --identity FILE ([ensure] identity in config.toml)",
        ),
        Some(_) => (why.to_string(), "give the identity it was encrypted to"),
    };
    format!(
        "the newest backup {} is encrypted and ensure cannot open it: {cannot}; {fix}, or restore it by hand with `kubeboot recover --etcd-backup-file ... --identity FILE`; an older plain backup is not used instead",
        backup.display()
    )
}
