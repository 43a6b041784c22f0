//! The files of one checkpoint volume ([`Materialize`]): Secret and ConfigMap keys read
//! through the API, downward API values already resolved by `sanitize`, and
//! service-account tokens from TokenRequest, with the modes the parent asked for.
//!
//! Modes: the item's mode, else the volume's `defaultMode`, else 0644 as Kubernetes does,
//! except that Secret keys and tokens default to 0600 and never keep a world bit
//! (docs/design.md §5: a checkpoint's secrets sit on the host disk, outside any pod). With an
//! `fsGroup` the group may read, as the kubelet's volume ownership gives it. Dirs are
//! 0700 (0750 with an `fsGroup`); owners follow [`FileOwner`] when running as root.
//!
//! Tokens: requested bound to this node's Node object with the projection's own
//! lifetime, and renewed once 80 % of the lifetime granted has passed (`tokens` says
//! why). A token is cached between cycles only until then, and forgotten once expired.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};

use super::payload::{File, Ownership};
use super::sanitize::{Content, FileOwner, Materialize, ObjectFiles, Projection};
use super::tokens;
use super::volumes::check_name;
use crate::source::error_chain;

/// The mode of one file: `explicit` (item, else volume default) or the default, with the
/// rules in the module doc.
#[must_use]
pub fn file_mode(explicit: Option<i32>, sensitive: bool, group: bool) -> u32 {
    let default = if sensitive { 0o600 } else { 0o644 };
    let mut mode = explicit
        .and_then(|m| u32::try_from(m & 0o777).ok())
        .unwrap_or(default);
    if sensitive {
        mode &= !0o007;
    }
    if group {
        mode |= 0o040;
    }
    mode
}

/// The dir mode and owner for files of `owner`; `as_root`: this process may chown.
pub fn ownership(owner: &FileOwner, as_root: bool) -> Result<Ownership, String> {
    let id = |v: Option<i64>, what: &str| match v {
        None => Ok(0),
        Some(v) => u32::try_from(v).map_err(|_| format!("{what} {v} is not a valid id")),
    };
    let uid = id(owner.uid, "runAsUser")?;
    let gid = id(owner.gid, "fsGroup")?;
    // Dirs stay root's: a dir the pod's user owned (or could write) would let it plant a
    // link for root's next write (issue 12, finding 1). So they must let that user in:
    // with an fsGroup, through the group; otherwise through "other", as the kubelet's
    // Secret volume dirs do (the checkpoint root above them is root's alone, 0700).
    let dir_mode = match (as_root, owner.gid.is_some(), uid) {
        (false, _, _) | (true, _, 0) => 0o700,
        (true, true, _) => 0o750,
        (true, false, _) => 0o755,
    };
    Ok(Ownership {
        dir_mode,
        owner: as_root.then_some((uid, gid)),
    })
}

/// The files `of` selects from an object's `data` (`None`: the object does not exist).
/// `what` names the object in errors, e.g. `secret kube-system/tls`; values never appear.
pub fn object_files(
    of: &ObjectFiles,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    sensitive: bool,
    group: bool,
    what: &str,
) -> Result<Vec<File>, String> {
    let Some(data) = data else {
        return if of.optional {
            Ok(Vec::new())
        } else {
            Err(format!("{what} does not exist"))
        };
    };
    let mode = |m: Option<i32>| file_mode(m.or(of.default_mode), sensitive, group);
    if of.items.is_empty() {
        return data
            .iter()
            .map(|(key, bytes)| {
                check_name(key)
                    .ok()
                    .filter(|()| !key.starts_with(".."))
                    .ok_or_else(|| format!("{what} has key {key:?}, which is not a file name"))?;
                Ok(File {
                    path: key.clone(),
                    bytes: bytes.clone(),
                    mode: mode(None),
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for item in &of.items {
        match data.get(&item.key) {
            Some(bytes) => out.push(File {
                path: item.path.clone(),
                bytes: bytes.clone(),
                mode: mode(item.mode),
            }),
            None if of.optional => {}
            None => return Err(format!("{what} has no key {:?}", item.key)),
        }
    }
    Ok(out)
}

/// Merges projection sources into one list: a later source's file replaces an
/// earlier one at the same path.
fn merge(into: &mut Vec<File>, more: Vec<File>) {
    for f in more {
        into.retain(|g| g.path != f.path);
        into.push(f);
    }
}

struct CachedToken {
    token: String,
    renew_at: jiff::Timestamp,
}

/// Reads what a checkpoint's volumes hold, caching tokens between cycles.
#[derive(Default)]
pub struct Fetcher {
    /// This node's name: the Node object tokens are bound to.
    node: String,
    tokens: HashMap<(String, String, Option<String>, i64), CachedToken>,
}

impl Fetcher {
    /// A fetcher for the node named `node`.
    #[must_use]
    pub fn new(node: &str) -> Fetcher {
        Fetcher {
            node: node.to_string(),
            tokens: HashMap::new(),
        }
    }

    /// The files of `m`, fetched through `client`. Errors name the object, never a value.
    pub async fn files(
        &mut self,
        client: &kube::Client,
        m: &Materialize,
        group: bool,
    ) -> Result<Vec<File>, String> {
        let ns = m.namespace.as_str();
        Ok(match &m.content {
            Content::Secret(of) => secret_files(client, ns, of, group).await?,
            Content::ConfigMap(of) => config_map_files(client, ns, of, group).await?,
            Content::Projected(sources) => {
                let mut out = Vec::new();
                for s in sources {
                    let more = match s {
                        Projection::Secret(of) => secret_files(client, ns, of, group).await?,
                        Projection::ConfigMap(of) => {
                            config_map_files(client, ns, of, group).await?
                        }
                        Projection::DownwardApi {
                            files,
                            default_mode,
                        } => files
                            .iter()
                            .map(|f| File {
                                path: f.path.clone(),
                                bytes: f.content.clone().into_bytes(),
                                mode: file_mode(f.mode.or(*default_mode), false, group),
                            })
                            .collect(),
                        Projection::ServiceAccountToken {
                            service_account,
                            audience,
                            expiration_seconds,
                            path,
                            default_mode,
                        } => {
                            let token = self
                                .token(client, ns, service_account, audience, *expiration_seconds)
                                .await?;
                            vec![File {
                                path: path.clone(),
                                bytes: token.into_bytes(),
                                mode: file_mode(*default_mode, true, group),
                            }]
                        }
                    };
                    merge(&mut out, more);
                }
                out
            }
        })
    }

    async fn token(
        &mut self,
        client: &kube::Client,
        ns: &str,
        service_account: &str,
        audience: &Option<String>,
        expiration_seconds: Option<i64>,
    ) -> Result<String, String> {
        let asked = expiration_seconds.unwrap_or(tokens::DEFAULT_TOKEN_SECONDS);
        let key = (
            ns.to_string(),
            service_account.to_string(),
            audience.clone(),
            asked,
        );
        let now = jiff::Timestamp::now();
        // Nothing is kept past its renewal: a due token is dropped before asking again,
        // so a failed renewal leaves no stale token in memory.
        self.tokens.retain(|_, c| now < c.renew_at);
        if let Some(c) = self.tokens.get(&key) {
            return Ok(c.token.clone());
        }
        let request = tokens::request(&self.node, audience.as_deref(), Some(asked));
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let what = format!("token for service account {ns}/{service_account}");
        let got = api
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
        let status = got
            .status
            .as_ref()
            .ok_or_else(|| format!("{what}: the api-server returned no token"))?;
        let renew_at = tokens::renew_at(&got, status, jiff::Timestamp::now());
        let token = status.token.clone();
        self.tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                renew_at,
            },
        );
        Ok(token)
    }
}

async fn secret_files(
    client: &kube::Client,
    ns: &str,
    of: &ObjectFiles,
    group: bool,
) -> Result<Vec<File>, String> {
    let what = format!("secret {ns}/{}", of.name);
    check_name(&of.name).map_err(|r| format!("{what}: not a safe name ({r})"))?;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let found = api
        .get_opt(&of.name)
        .await
        .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
    let data = found.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect::<BTreeMap<_, _>>()
    });
    object_files(of, data.as_ref(), true, group, &what)
}

async fn config_map_files(
    client: &kube::Client,
    ns: &str,
    of: &ObjectFiles,
    group: bool,
) -> Result<Vec<File>, String> {
    let what = format!("configmap {ns}/{}", of.name);
    check_name(&of.name).map_err(|r| format!("{what}: not a safe name ({r})"))?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let found = api
        .get_opt(&of.name)
        .await
        .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
    let data = found.map(|c| {
        let mut all: BTreeMap<String, Vec<u8>> = c
            .binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in c.data.unwrap_or_default() {
            all.insert(k, v.into_bytes());
        }
        all
    });
    object_files(of, data.as_ref(), false, group, &what)
}

#[cfg(test)]
#[path = "materialize_tests.rs"]
mod tests;
