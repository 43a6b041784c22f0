//! The network half of the kubelet API's auth ([`super::auth`]): who a request on 10250
//! is (a client certificate verified against `--client-ca-file` by the TLS layer, or a
//! bearer token reviewed by the api-server's TokenReview, or anonymous when allowed),
//! and whether it may (the api-server's SubjectAccessReview per attribute set). The
//! api-server is the one in `--kubeconfig`, reached with the kubelet's own credentials.
//!
//! Upstream: `DelegatingAuthenticatorConfig.New` (x509, then the token webhook behind a
//! cache of `--authentication-token-webhook-cache-ttl`, errors not cached; anonymous only
//! when nothing failed), `bearertoken.AuthenticateRequest` (a token the webhook does not
//! accept is an error, never anonymous), and `WebhookAuthorizer.Authorize` (allowed answers
//! cached `cacheAuthorizedTTL`, others `cacheUnauthorizedTTL`, errors not cached). The
//! webhooks' retry backoff is not modelled: one attempt, bounded by [`CALL_TIMEOUT`].

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::auth::{self, Attrs, Decision, Mode, Refusal, TtlCache, User};
use super::config::Config;

/// Upper bound on one review call (upstream's webhook client times out after 30 s and
/// retries; a refusal is what matters here, not how long it takes).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The kubelet's authenticator and authorizer for 10250.
pub struct KubeletAuth {
    flags: auth::AuthFlags,
    node: String,
    client: Option<kube::Client>,
    tokens: Mutex<TtlCache<Option<User>>>,
    decisions: Mutex<TtlCache<Decision>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KubeletAuth {
    /// Builds the api-server client when a webhook needs one (no connection is made yet:
    /// the kubelet starts while the api-server is down).
    pub async fn new(cfg: &Config) -> Result<Arc<KubeletAuth>> {
        let flags = cfg.auth.clone();
        flags.check(cfg.kubeconfig.is_some())?;
        let client = match &cfg.kubeconfig {
            Some(path) if flags.token_webhook || flags.mode == Mode::Webhook => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
                Some(kube::Client::try_from(config)?)
            }
            _ => None,
        };
        Ok(Arc::new(KubeletAuth {
            flags,
            node: cfg.node_name.clone(),
            client,
            tokens: Mutex::new(TtlCache::default()),
            decisions: Mutex::new(TtlCache::default()),
        }))
    }

    /// `InstallAuthFilter`: authenticate, then authorize every attribute set in order
    /// until one is allowed; an authorizer error ends it with 500.
    pub async fn check(
        &self,
        cert_user: Option<User>,
        authorization: Option<&str>,
        method: &str,
        path: &str,
    ) -> Result<User, Refusal> {
        let user = self.authenticate(cert_user, authorization).await?;
        if self.flags.mode == Mode::AlwaysAllow {
            return Ok(user);
        }
        let attrs = auth::request_attributes(method, path);
        let mut last = None;
        for a in attrs {
            match self.authorize(&user, &a).await {
                Ok(Decision::Allow) => return Ok(user),
                Ok(_) => last = Some(a),
                Err(e) => {
                    crate::note!(
                        "fake-kubelet: authorization error for {} {path}: {e:#}",
                        user.name
                    );
                    return Err(Refusal::AuthzError(user.name, a));
                }
            }
        }
        let a = last.unwrap_or(Attrs {
            verb: String::new(),
            subresource: "proxy".into(),
        });
        Err(Refusal::Forbidden(user.name, a))
    }

    async fn authenticate(
        &self,
        cert_user: Option<User>,
        authorization: Option<&str>,
    ) -> Result<User, Refusal> {
        if let Some(u) = cert_user {
            return Ok(u);
        }
        let token = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        match token {
            Some(t) if self.flags.token_webhook => match self.review_token(t).await {
                Ok(Some(u)) => Ok(u),
                Ok(None) => Err(Refusal::Unauthenticated),
                Err(e) => {
                    crate::note!("fake-kubelet: unable to authenticate the request: {e:#}");
                    Err(Refusal::Unauthenticated)
                }
            },
            _ if self.flags.anonymous => Ok(User::anonymous()),
            _ => Err(Refusal::Unauthenticated),
        }
    }

    async fn review_token(&self, token: &str) -> Result<Option<User>> {
        let key = hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
        if let Some(hit) = lock(&self.tokens).get(&key, Instant::now()) {
            return Ok(hit);
        }
        let resp = self
            .post(
                "/apis/authentication.k8s.io/v1/tokenreviews",
                &auth::token_review(token),
            )
            .await?;
        let user = auth::token_review_user(&resp)?;
        let ttl = self.flags.token_webhook_cache_ttl;
        lock(&self.tokens).put(key, user.clone(), ttl, Instant::now());
        Ok(user)
    }

    async fn authorize(&self, user: &User, a: &Attrs) -> Result<Decision> {
        let sar = auth::subject_access_review(user, &self.node, a);
        let key = sar["spec"].to_string();
        if let Some(hit) = lock(&self.decisions).get(&key, Instant::now()) {
            return Ok(hit);
        }
        let resp = self
            .post("/apis/authorization.k8s.io/v1/subjectaccessreviews", &sar)
            .await?;
        let d = auth::sar_decision(&resp);
        let ttl = if d == Decision::Allow {
            self.flags.authorized_ttl
        } else {
            self.flags.unauthorized_ttl
        };
        lock(&self.decisions).put(key, d, ttl, Instant::now());
        Ok(d)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let Some(client) = &self.client else {
            bail!("no api-server client");
        };
        let req = hyper::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body)?)?;
        match tokio::time::timeout(CALL_TIMEOUT, client.request::<Value>(req)).await {
            Ok(r) => Ok(r.with_context(|| format!("POST {path}"))?),
            Err(_) => bail!("POST {path}: no answer within {CALL_TIMEOUT:?}"),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
