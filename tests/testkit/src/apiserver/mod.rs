//! `fake-apiserver`: a kube-apiserver double for tests on machines where no real one can
//! be installed. It speaks the real wire protocol (HTTPS with client certificates, REST
//! paths, `Status` errors, discovery, chunked watches) well enough for kubectl, kube-rs
//! and the project's other doubles, and stores objects in real etcd exactly as
//! kube-apiserver does (registry keys, `k8s\0` protobuf values, resourceVersion = etcd
//! mod revision), so what recovery later reads from etcd is what a real cluster wrote.
//!
//! Start it in-process with [`ApiServer::start`] or as the `fake-apiserver` binary with
//! kube-apiserver's flags ([`Config::from_args`]). What it does and does not do is listed
//! in `rest.rs` (verbs), `discovery.rs` (resources), `crd.rs` (custom resources),
//! `serviceaccount.rs` (tokens), `tls.rs` (authentication), `authz.rs` (authorization:
//! `--authorization-mode=Node,RBAC` by default, with `rbac.rs`, `node_authz.rs` and the
//! seeded `bootstrap_policy.rs`) and `review.rs` (TokenReview, SubjectAccessReview).
//! Unauthenticated clients are `system:anonymous` and authorized like anyone else.

pub mod admission;
pub mod authz;
pub mod bootstrap_policy;
mod config;
pub mod crd;
pub(crate) mod defaults;
pub mod discovery;
pub mod fault;
pub mod harness;
pub mod jwt;
pub mod kubectl;
pub mod node;
pub mod node_authz;
pub mod noderestriction;
mod openapi;
mod patch;
pub mod rbac;
mod resources;
mod rest;
pub mod review;
pub mod sa_admission;
pub mod selectors;
pub mod serviceaccount;
pub mod status;
pub mod store;
mod table;
pub mod tls;
mod watch;
mod write;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch as signal};

use authz::Authorizer;
pub use config::Config;
pub use fault::Fault;
use serviceaccount::ServiceAccounts;
use status::ApiError;
use store::Store;
use tls::User;

/// The largest request body accepted (kube-apiserver's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;
/// A client that does not finish the TLS handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub type Body = BoxBody<Bytes, Infallible>;

/// Shared by every connection.
struct State {
    store: Arc<Store>,
    tokens: HashMap<String, User>,
    service_accounts: ServiceAccounts,
    faults: Vec<Fault>,
    server_address: String,
    verbosity: u8,
    /// Set once the system namespaces exist (a `/readyz` check, like the real
    /// server's post-start hooks).
    bootstrapped: Arc<AtomicBool>,
    /// Set once the default RBAC policy is in etcd (`rbac/bootstrap-roles`).
    policy_seeded: Arc<AtomicBool>,
    authz: Authorizer,
    /// The audiences service-account tokens must name (TokenReview reports them).
    audiences: Vec<String>,
    /// What `/readyz` answered last, so that each change is logged once (a drill's
    /// log then says why a master's api-server stayed out of the load balancer).
    last_readyz: std::sync::Mutex<&'static str>,
}

/// A running server; dropping it stops accepting and closes open connections.
pub struct ApiServer {
    addr: SocketAddr,
    shutdown: signal::Sender<bool>,
}

impl ApiServer {
    /// Binds, then serves on the current tokio runtime until dropped.
    pub async fn start(config: Config) -> Result<ApiServer> {
        let tls = tls::server_config(
            config.tls_cert_file.as_deref(),
            config.tls_private_key_file.as_deref(),
            config.client_ca_file.as_deref(),
        )?;
        let tokens = match &config.token_auth_file {
            Some(p) => tls::load_tokens(p)?,
            None => HashMap::new(),
        };
        let service_accounts = ServiceAccounts::from_config(&config)?;
        let encryption = match &config.encryption_provider_config {
            Some(p) => Some(
                kubeboot::encryption::EncryptionConfig::from_file(p)
                    .with_context(|| format!("--encryption-provider-config {}", p.display()))?,
            ),
            None => None,
        };
        let bind = (config.bind_address, config.secure_port).into();
        let listener = crate::listen::bind(bind, config.permit_port_sharing)
            .with_context(|| format!("binding {}:{}", config.bind_address, config.secure_port))?;
        let addr = listener.local_addr()?;
        let server_address = match &config.advertise_address {
            Some(a) => format!("{a}:{}", addr.port()),
            None => addr.to_string(),
        };
        let store = Store::new(&config.etcd_prefix, config.etcd.clone(), encryption);
        let state = Arc::new(State {
            store: Arc::new(store),
            tokens,
            service_accounts,
            faults: config.faults.clone(),
            server_address,
            verbosity: config.verbosity,
            bootstrapped: Arc::new(AtomicBool::new(false)),
            policy_seeded: Arc::new(AtomicBool::new(false)),
            last_readyz: std::sync::Mutex::new(""),
            authz: Authorizer {
                modes: config.authorization_modes.clone(),
                policy: Arc::new(rbac::Policy::default()),
            },
            audiences: config.audiences(),
        });
        let (shutdown, stop) = signal::channel(false);
        tokio::spawn(defaults::ensure_system_namespaces(
            state.store.clone(),
            state.bootstrapped.clone(),
            stop.clone(),
        ));
        tokio::spawn(seed_policy(
            state.store.clone(),
            state.policy_seeded.clone(),
            stop.clone(),
        ));
        tokio::spawn(
            state
                .authz
                .policy
                .clone()
                .follow(state.store.clone(), stop.clone()),
        );
        tokio::spawn(crd::establish_pending(state.store.clone(), Duration::ZERO));
        tokio::spawn(accept_loop(
            listener,
            tokio_rustls::TlsAcceptor::from(tls),
            state,
            stop,
        ));
        Ok(ApiServer { addr, shutdown })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (the bound address, with loopback for 0.0.0.0).
    pub fn url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.addr.ip().to_string()
        };
        format!("https://{ip}:{}", self.addr.port())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    mut stop: signal::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    crate::note!("fake-apiserver: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let (acceptor, state, mut stop) = (acceptor.clone(), state.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(tls::user_from_cert);
            let svc = hyper::service::service_fn(move |req| {
                let (state, user) = (state.clone(), user.clone());
                async move { Ok::<_, Infallible>(handle(&state, user, req).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// What a handler produces.
pub enum Reply {
    Json(u16, Value),
    Text(u16, String),
    Stream(mpsc::Receiver<Bytes>),
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::Json(e.code, e.to_status())
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn into_response(reply: Reply) -> (u16, Response<Body>) {
    let (code, ctype, body) = match reply {
        Reply::Json(code, v) => (
            code,
            "application/json",
            full(serde_json::to_vec(&v).unwrap_or_default()),
        ),
        Reply::Text(code, t) => (code, "text/plain; charset=utf-8", full(t)),
        Reply::Stream(rx) => {
            let frames = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
            });
            (200, "application/json", StreamBody::new(frames).boxed())
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = ctype.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    (code, resp)
}

fn header(req: &Request<Incoming>, name: hyper::header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Seeds the default RBAC policy once etcd answers (the real server's
/// `rbac/bootstrap-roles` post-start hook); retries until it succeeds or the server stops.
async fn seed_policy(store: Arc<Store>, done: Arc<AtomicBool>, mut stop: signal::Receiver<bool>) {
    loop {
        if bootstrap_policy::ensure(&store).await.is_ok() {
            done.store(true, Ordering::SeqCst);
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// An authenticated user with `system:authenticated` added (`AuthenticatedGroupAdder`).
fn authenticated(mut u: User) -> User {
    if !u.groups.iter().any(|g| g == authz::AUTHENTICATED) {
        u.groups.push(authz::AUTHENTICATED.into());
    }
    u
}

async fn handle(state: &State, cert_user: Option<User>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = header(&req, hyper::header::AUTHORIZATION);
    let token_user = match auth.strip_prefix("Bearer ").map(str::trim) {
        Some(t) => Some(bearer(state, t).await),
        None => None,
    };
    // A token that does not authenticate is a 401; no credentials at all is anonymous.
    let user = match (cert_user, token_user) {
        (_, Some(None)) => None,
        (Some(u), _) | (None, Some(Some(u))) => Some(authenticated(u)),
        (None, None) => Some(User {
            name: authz::ANONYMOUS.into(),
            groups: vec![authz::UNAUTHENTICATED.into()],
        }),
    };
    let name = user.as_ref().map_or(authz::ANONYMOUS, |u| u.name.as_str());
    let fault = fault::check(&state.faults, method.as_str(), &path, &query, name);
    let reply = if let Some(e) = fault {
        e.into()
    } else if let Some(user) = &user {
        let accept = header(&req, hyper::header::ACCEPT);
        let content_type = header(&req, hyper::header::CONTENT_TYPE);
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(body) => {
                let r = rest::Incoming {
                    method: method.as_str(),
                    path: &path,
                    query: &query,
                    accept: &accept,
                    content_type: &content_type,
                    body: body.to_bytes(),
                    by_node: None,
                };
                authorized(state, user, r).await
            }
            Err(e) => {
                ApiError::new(413, "RequestEntityTooLarge", format!("request body: {e}")).into()
            }
        }
    } else {
        ApiError::new(401, "Unauthorized", "Unauthorized").into()
    };
    let (code, resp) = into_response(reply);
    // A health check refused is how a master's api-server stays out of a load balancer.
    let health = ["/readyz", "/healthz", "/livez"].contains(&path.as_str());
    if state.verbosity >= 2 || code >= 500 || (code == 403 && (health || state.verbosity >= 1)) {
        crate::note!("fake-apiserver: {method} {path}?{query} {code} user={name}");
    }
    resp
}

/// Authorization (`WithAuthorization`), NodeRestriction admission, then the handler;
/// writes to RBAC objects mark the policy cache stale.
async fn authorized(state: &State, user: &User, mut req: rest::Incoming<'_>) -> Reply {
    let attrs = authz::request_attributes(user, req.method, req.path, req.query);
    req.by_node = noderestriction::NodeWrite::of(&attrs);
    let (decision, reason) = state.authz.authorize(&state.store, &attrs).await;
    if decision != authz::Decision::Allow {
        return authz::forbidden(&attrs, &reason).into();
    }
    if let Err(e) = noderestriction::admit(&state.store, &attrs, &req.body).await {
        return e.into();
    }
    let reply = route(state, req).await;
    if attrs.api_group == "rbac.authorization.k8s.io"
        && !matches!(attrs.verb.as_str(), "get" | "list" | "watch")
    {
        state.authz.policy.invalidate();
    }
    reply
}

/// The user of a bearer token: a static token, else a service-account JWT.
async fn bearer(state: &State, token: &str) -> Option<User> {
    if let Some(u) = state.tokens.get(token) {
        return Some(u.clone());
    }
    match state
        .service_accounts
        .authenticate(&state.store, token)
        .await
    {
        Ok(u) => Some(u),
        Err(why) => {
            if state.verbosity >= 1 {
                crate::note!("fake-apiserver: bearer token refused: {why}");
            }
            None
        }
    }
}

async fn route(state: &State, req: rest::Incoming<'_>) -> Reply {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method == "GET";
    let store = &state.store;
    // Custom resources of established CRDs, read from etcd when a path may need them.
    let custom = match segs.as_slice() {
        ["apis", g, ..] if !discovery::is_builtin_group(g) => crd::served(store).await,
        ["apis"] | ["openapi", ..] => crd::served(store).await,
        _ => Vec::new(),
    };
    let json = |v: Option<Value>| match v {
        Some(v) => Reply::Json(200, v),
        None => ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into(),
    };
    match segs.as_slice() {
        ["healthz" | "livez", ..] if get => Reply::Text(200, "ok".into()),
        ["readyz", ..] if get => {
            let failed = if !state.store.healthy().await {
                Some("[-]etcd failed: reason withheld")
            } else if !state.policy_seeded.load(Ordering::SeqCst) {
                Some("[-]poststarthook/rbac/bootstrap-roles failed: not finished")
            } else if !state.bootstrapped.load(Ordering::SeqCst) {
                Some("[-]poststarthook/system-namespaces failed: not finished")
            } else {
                None
            };
            let now = failed.unwrap_or("ok");
            if let Ok(mut last) = state.last_readyz.lock()
                && *last != now
            {
                crate::note!("fake-apiserver: /readyz now answers: {now}");
                *last = now;
            }
            match failed {
                Some(f) => Reply::Text(500, format!("{f}\nreadyz check failed")),
                None => Reply::Text(200, "ok".into()),
            }
        }
        ["version"] if get => json(Some(discovery::version())),
        ["api"] if get => json(Some(discovery::core_versions(&state.server_address))),
        ["api", v] if get => json(discovery::resource_list("", v, &custom)),
        ["apis"] if get => json(Some(discovery::group_list(&custom))),
        ["apis", g] if get => json(discovery::group(g, &custom)),
        ["apis", g, v] if get => json(discovery::resource_list(g, v, &custom)),
        ["openapi", "v3"] if get => json(Some(openapi::root(&custom))),
        ["openapi", "v3", gv @ ..] if get => json(openapi::document(&gv.join("/"), &custom)),
        [
            "api",
            "v1",
            "namespaces",
            ns,
            "serviceaccounts",
            name,
            "token",
        ] if req.method == "POST" => {
            let sa = &state.service_accounts;
            serviceaccount::token_request(sa, store, ns, name, &req.body).await
        }
        ["apis", g, v, rest @ ..] if review::is_review_group(g) => {
            review::handle(state, g, v, rest, req.method, req.path, &req.body).await
        }
        ["api", v, rest @ ..] => rest::handle(store, &custom, "", v, rest, &req).await,
        ["apis", g, v, rest @ ..] => rest::handle(store, &custom, g, v, rest, &req).await,
        _ => json(None),
    }
}
