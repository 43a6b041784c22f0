//! The kubelet API's authentication and authorization on `--port` (10250), as the real
//! kubelet builds them (`cmd/kubelet/app/auth.go` `BuildAuth`, `pkg/kubelet/server/auth.go`,
//! the filter `InstallAuthFilter` in `pkg/kubelet/server/server.go`). Pure logic: flags,
//! request attributes, the review objects sent to the api-server and how their answers
//! decide, the refusals, and the TTL caches. The network half is [`super::webhook`].
//!
//! Flag defaults are the kubelet's *command-line* defaults (`applyLegacyDefaults` in
//! `cmd/kubelet/app/options/options.go`: anonymous on, token webhook off, `AlwaysAllow`),
//! not the `KubeletConfiguration` file defaults (`SetDefaults_KubeletConfiguration`:
//! anonymous off, webhook on, `Webhook`). The harness and `scripts/lib/cluster.sh` pass
//! the file defaults explicitly, as a kubeadm-style node's config file does.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

/// `--authorization-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    Webhook,
}

/// The auth flags of the kubelet (names as upstream's).
#[derive(Debug, Clone)]
pub struct AuthFlags {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// Where a self-signed serving pair is kept when no cert/key is given; `None`:
    /// `<root-dir>/pki` (upstream's `--cert-dir` default).
    pub cert_dir: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub anonymous: bool,
    pub token_webhook: bool,
    pub token_webhook_cache_ttl: Duration,
    pub mode: Mode,
    pub authorized_ttl: Duration,
    pub unauthorized_ttl: Duration,
}

impl Default for AuthFlags {
    fn default() -> Self {
        AuthFlags {
            tls_cert_file: None,
            tls_private_key_file: None,
            cert_dir: None,
            client_ca_file: None,
            anonymous: true,
            token_webhook: false,
            token_webhook_cache_ttl: Duration::from_secs(120),
            mode: Mode::AlwaysAllow,
            authorized_ttl: Duration::from_secs(300),
            unauthorized_ttl: Duration::from_secs(30),
        }
    }
}

/// Boolean flags, which upstream accepts bare (`--authentication-token-webhook`).
pub fn is_bool_flag(name: &str) -> bool {
    matches!(name, "anonymous-auth" | "authentication-token-webhook")
}

fn assign<T>(slot: &mut T, v: T) -> Result<()> {
    *slot = v;
    Ok(())
}

fn parse_bool(v: &str) -> Result<bool> {
    match v {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        _ => bail!("expected true or false"),
    }
}

impl AuthFlags {
    /// Sets an auth flag; `None` when `name` is not one.
    pub fn set(&mut self, name: &str, v: &str) -> Option<Result<()>> {
        let dur = super::config::parse_duration;
        let path = || Some(PathBuf::from(v));
        Some(match name {
            "tls-cert-file" => assign(&mut self.tls_cert_file, path()),
            "tls-private-key-file" => assign(&mut self.tls_private_key_file, path()),
            "cert-dir" => assign(&mut self.cert_dir, path()),
            "client-ca-file" => assign(&mut self.client_ca_file, path()),
            "anonymous-auth" => parse_bool(v).map(|b| self.anonymous = b),
            "authentication-token-webhook" => parse_bool(v).map(|b| self.token_webhook = b),
            "authentication-token-webhook-cache-ttl" => {
                dur(v).map(|d| self.token_webhook_cache_ttl = d)
            }
            "authorization-mode" => match v {
                "AlwaysAllow" => assign(&mut self.mode, Mode::AlwaysAllow),
                "Webhook" => assign(&mut self.mode, Mode::Webhook),
                _ => Err(anyhow::anyhow!("must be AlwaysAllow or Webhook")),
            },
            "authorization-webhook-cache-authorized-ttl" => dur(v).map(|d| self.authorized_ttl = d),
            "authorization-webhook-cache-unauthorized-ttl" => {
                dur(v).map(|d| self.unauthorized_ttl = d)
            }
            _ => return None,
        })
    }

    /// Upstream's `BuildAuthn`/`BuildAuthz` refuse a webhook without an api-server client.
    pub fn check(&self, has_kubeconfig: bool) -> Result<()> {
        if !has_kubeconfig && self.token_webhook {
            bail!("no client provided, cannot use webhook authentication");
        }
        if !has_kubeconfig && self.mode == Mode::Webhook {
            bail!("no client provided, cannot use webhook authorization");
        }
        if self.tls_cert_file.is_some() != self.tls_private_key_file.is_some() {
            bail!("--tls-cert-file and --tls-private-key-file go together");
        }
        Ok(())
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: Value,
}

impl User {
    pub fn new(name: &str, groups: Vec<String>) -> User {
        User {
            name: name.into(),
            uid: String::new(),
            groups,
            extra: json!({}),
        }
    }

    /// `anonymous.NewAuthenticator`: `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> User {
        User::new("system:anonymous", vec!["system:unauthenticated".into()])
    }
}

/// One set of attributes to authorize (resource `nodes`, name the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    pub verb: String,
    pub subresource: String,
}

fn is_subpath(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    path == base || path.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
}

/// `nodeAuthorizerAttributesGetter.GetRequestAttributes` with `KubeletFineGrainedAuthz`
/// (beta, on by default since 1.33): the verb from the HTTP method (HEAD and others give
/// an empty verb, as upstream), then the subresources tried in order.
pub fn request_attributes(method: &str, path: &str) -> Vec<Attrs> {
    let verb = match method {
        "POST" => "create",
        "GET" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    let only = |s: &'static str| vec![s];
    let subs = if is_subpath(path, "/stats") {
        only("stats")
    } else if is_subpath(path, "/metrics") {
        only("metrics")
    } else if is_subpath(path, "/logs") {
        only("log")
    } else if is_subpath(path, "/checkpoint") {
        only("checkpoint")
    } else if is_subpath(path, "/pods") || is_subpath(path, "/runningpods/") {
        vec!["pods", "proxy"]
    } else if is_subpath(path, "/healthz") {
        vec!["healthz", "proxy"]
    } else if is_subpath(path, "/configz") {
        vec!["configz", "proxy"]
    } else {
        only("proxy")
    };
    subs.into_iter()
        .map(|s| Attrs {
            verb: verb.into(),
            subresource: s.into(),
        })
        .collect()
}

/// The `authentication.k8s.io/v1` TokenReview the token webhook posts (no audiences: the
/// kubelet configures none).
pub fn token_review(token: &str) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
           "metadata": {"creationTimestamp": null}, "spec": {"token": token}, "status": {}})
}

/// `WebhookTokenAuthenticator.AuthenticateToken`: an authenticated user, `Ok(None)` when
/// not authenticated, an error when the status carries one.
pub fn token_review_user(resp: &Value) -> Result<Option<User>> {
    let st = &resp["status"];
    if st["authenticated"].as_bool() != Some(true) {
        match st["error"].as_str() {
            Some(e) if !e.is_empty() => bail!("{e}"),
            _ => return Ok(None),
        }
    }
    let u = &st["user"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Some(User {
        name: u["username"].as_str().unwrap_or_default().into(),
        uid: u["uid"].as_str().unwrap_or_default().into(),
        groups: strings(&u["groups"]),
        extra: u.get("extra").cloned().unwrap_or_else(|| json!({})),
    }))
}

/// The `authorization.k8s.io/v1` SubjectAccessReview the webhook authorizer posts.
pub fn subject_access_review(user: &User, node: &str, a: &Attrs) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": {
            "resourceAttributes": {"namespace": "", "verb": a.verb, "group": "", "version": "v1",
                "resource": "nodes", "subresource": a.subresource, "name": node},
            "user": user.name, "groups": user.groups, "extra": user.extra, "uid": user.uid},
        "status": {"allowed": false}})
}

/// `WebhookAuthorizer.Authorize`: allowed, denied, or no opinion (both refuse here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

pub fn sar_decision(resp: &Value) -> Decision {
    let st = &resp["status"];
    if st["allowed"].as_bool() == Some(true) {
        Decision::Allow
    } else if st["denied"].as_bool() == Some(true) {
        Decision::Deny
    } else {
        Decision::NoOpinion
    }
}

/// Why a request on 10250 was refused: the status and body `InstallAuthFilter` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No identity, or authentication failed or errored: 401.
    Unauthenticated,
    /// The authorizer errored (e.g. the api-server is unreachable): 500.
    AuthzError(String, Attrs),
    /// No attribute set was allowed: 403.
    Forbidden(String, Attrs),
}

impl Refusal {
    pub fn status_and_body(&self) -> (u16, String) {
        match self {
            Refusal::Unauthenticated => (401, "Unauthorized".into()),
            Refusal::AuthzError(u, a) => (500, format!("Authorization error ({})", fields(u, a))),
            Refusal::Forbidden(u, a) => (403, format!("Forbidden ({})", fields(u, a))),
        }
    }
}

fn fields(user: &str, a: &Attrs) -> String {
    format!(
        "user={user}, verb={}, resource=nodes, subresource={}",
        a.verb, a.subresource
    )
}

/// A TTL cache keyed by string (upstream: `cache.LRUExpireCache` / the token cache).
#[derive(Debug)]
pub struct TtlCache<V> {
    entries: HashMap<String, (Instant, V)>,
}

impl<V: Clone> Default for TtlCache<V> {
    fn default() -> Self {
        TtlCache {
            entries: HashMap::new(),
        }
    }
}

impl<V: Clone> TtlCache<V> {
    pub fn get(&mut self, key: &str, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((until, v)) if now < *until => Some(v.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// A zero TTL caches nothing (upstream: a TTL of 0 disables the cache).
    pub fn put(&mut self, key: String, v: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        if self.entries.len() > 4096 {
            self.entries.retain(|_, (until, _)| now < *until);
        }
        self.entries.insert(key, (now + ttl, v));
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
