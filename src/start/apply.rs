//! Creating `manifests/` in the api-server, `start`'s step 4: Namespaces, then
//! CustomResourceDefinitions (waiting until each is Established and its list endpoint
//! answers), then everything else, in path order within each phase.
//!
//! Where bootkube only POSTed and failed on AlreadyExists (docs/bootkube-notes.md §5.2), an
//! existing object is read and replaced (PUT with the live `resourceVersion`, read
//! again on a 409 Conflict), or left alone when it already holds every field the file
//! sets, so running `start` twice is safe. Why not server-side apply: the file is the
//! truth here, and SSA would refuse fields another manager owns unless forced; replace
//! is one well-known verb every api-server (and the test double) serves. The cost, a
//! replace resetting fields the file leaves out, is what re-creating from a file means.
//!
//! Objects are sent as the raw JSON of the file (no round trip through typed structs
//! that would drop unknown fields), to the URL discovery of their group/version gives
//! (pinned, one request per apiVersion, cached; re-run after the CRDs so custom
//! resources resolve). Every request has a timeout; transient failures (transport
//! errors, timeouts, 404 while an API or namespace is not there yet, 409, 429, 5xx)
//! are retried with capped exponential back-off until the deadline, whose error says
//! what it waited for. A kind discovery still does not know after
//! `unknown_kind_grace`, and any other refusal (400, 401, 403, 422, …), fails at once
//! naming the object, its file and the api-server's message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::api::{GetParams, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersion, Request, Resource, Status};
use kube::discovery::{self, ApiGroup, Scope};
use serde_json::Value;

use super::manifests::{Manifest, Phases};
use crate::source::error_chain;

/// First back-off step.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// A request started near the deadline still gets this long.
const MIN_REQUEST: Duration = Duration::from_millis(500);

/// Deadline and pacing of [`create_all`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Nothing is retried or waited for after this.
    pub deadline: Instant,
    /// Cap of the exponential back-off between tries.
    pub backoff_max: Duration,
    /// Bound of one HTTP request.
    pub request_timeout: Duration,
    /// How long a kind discovery does not know is retried (its CRD or aggregated API may
    /// still be coming) before it is an error.
    pub unknown_kind_grace: Duration,
}

impl ApplyOptions {
    /// Defaults: back-off up to 5 s, 30 s per request, 30 s for unknown kinds.
    pub fn until(deadline: Instant) -> Self {
        ApplyOptions {
            deadline,
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            unknown_kind_grace: Duration::from_secs(30),
        }
    }
}

/// What [`create_all`] did, per object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplySummary {
    pub created: usize,
    pub updated: usize,
    /// Existing objects that already held every field of their file.
    pub unchanged: usize,
}

/// Why an object could not be created. Display is one line.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{object} from {origin}: {message}")]
    Rejected {
        object: String,
        origin: String,
        message: String,
    },
    #[error(
        "{object} from {origin}: the api-server does not serve kind {kind} of {api_version}: {detail}"
    )]
    UnknownKind {
        object: String,
        origin: String,
        api_version: String,
        kind: String,
        detail: String,
    },
    #[error("gave up at the deadline waiting for {waited_for}; last: {last}")]
    Deadline { waited_for: String, last: String },
}

/// Creates or updates every object of `phases`; `progress` gets one line per object.
pub async fn create_all(
    client: &kube::Client,
    phases: &Phases,
    opts: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplySummary, ApplyError> {
    let mut a = Applier {
        client,
        opts,
        groups: HashMap::new(),
        summary: ApplySummary::default(),
    };
    for m in phases.namespaces.iter().chain(&phases.crds) {
        a.apply(m, progress).await?;
    }
    for m in &phases.crds {
        a.wait_crd(m).await?;
        progress(&format!(
            "established CustomResourceDefinition {}",
            m.name()
        ));
    }
    if !phases.crds.is_empty() {
        a.groups.clear();
    }
    for m in &phases.rest {
        a.apply(m, progress).await?;
    }
    Ok(a.summary)
}

/// One try's failure.
enum Fail {
    Retry(String),
    Stop(ApplyError),
}

/// A request's failure, before it is judged in context.
enum CallError {
    /// The api-server's answer to `.1` (method and path).
    Status(Box<Status>, String),
    Transport(String),
    /// The request could not be built (say, a name that cannot be in a URL).
    Build(String),
}

enum Outcome {
    Created,
    Updated,
    Unchanged,
}

struct Target {
    ar: ApiResource,
    namespace: Option<String>,
}

impl Target {
    fn request(&self) -> Request {
        Request::new(DynamicObject::url_path(&self.ar, self.namespace.as_deref()))
    }
    fn label(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{name}", self.ar.kind),
            None => format!("{} {name}", self.ar.kind),
        }
    }
}

struct Applier<'a> {
    client: &'a kube::Client,
    opts: &'a ApplyOptions,
    /// Discovery per apiVersion, cleared after the CRDs.
    groups: HashMap<String, ApiGroup>,
    summary: ApplySummary,
}

impl Applier<'_> {
    async fn apply(
        &mut self,
        m: &Manifest,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), ApplyError> {
        let started = Instant::now();
        let waited_for = || format!("the api-server to accept {} from {}", m.label(), m.origin());
        let (outcome, label) = self
            .retrying(waited_for, async |a: &mut Self| {
                a.try_apply(m, started).await
            })
            .await?;
        let (count, verb) = match outcome {
            Outcome::Created => (&mut self.summary.created, "created"),
            Outcome::Updated => (&mut self.summary.updated, "updated"),
            Outcome::Unchanged => (&mut self.summary.unchanged, "unchanged"),
        };
        *count += 1;
        progress(&format!("{verb} {label}"));
        Ok(())
    }

    /// Runs `step` until it succeeds, fails for good, or the deadline passes.
    async fn retrying<T>(
        &mut self,
        waited_for: impl Fn() -> String,
        mut step: impl AsyncFnMut(&mut Self) -> Result<T, Fail>,
    ) -> Result<T, ApplyError> {
        let mut delay = BACKOFF_START.min(self.opts.backoff_max);
        loop {
            let last = match step(self).await {
                Ok(v) => return Ok(v),
                Err(Fail::Stop(e)) => return Err(e),
                Err(Fail::Retry(last)) => last,
            };
            let now = Instant::now();
            if now >= self.opts.deadline {
                return Err(ApplyError::Deadline {
                    waited_for: waited_for(),
                    last,
                });
            }
            tracing::debug!(waiting_for = %waited_for(), %last, "retrying");
            tokio::time::sleep(delay.min(self.opts.deadline - now)).await;
            delay = (delay * 2).min(self.opts.backoff_max);
        }
    }

    async fn try_apply(
        &mut self,
        m: &Manifest,
        started: Instant,
    ) -> Result<(Outcome, String), Fail> {
        let target = self.resolve(m, started).await?;
        let label = target.label(m.name());
        let mut body = m.object.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            match &target.namespace {
                Some(ns) => meta.insert("namespace".into(), Value::String(ns.clone())),
                None => meta.remove("namespace"),
            };
        }
        let req = target.request();
        match self
            .call(req.create(&PostParams::default(), to_vec(&body)))
            .await
        {
            Ok(_) => return Ok((Outcome::Created, label)),
            Err(CallError::Status(s, _)) if s.code == 409 => {}
            Err(e) => return Err(judge(m, &label, e)),
        }
        let live = self
            .call(req.get(m.name(), &GetParams::default()))
            .await
            .map_err(|e| judge(m, &label, e))?;
        if contains(&live, &body) {
            return Ok((Outcome::Unchanged, label));
        }
        if let (Some(meta), Some(rv)) = (
            body.get_mut("metadata").and_then(Value::as_object_mut),
            live.pointer("/metadata/resourceVersion"),
        ) {
            meta.insert("resourceVersion".into(), rv.clone());
        }
        match self
            .call(req.replace(m.name(), &PostParams::default(), to_vec(&body)))
            .await
        {
            Ok(_) => Ok((Outcome::Updated, label)),
            Err(CallError::Status(s, what)) if s.code == 409 => {
                Err(Fail::Retry(format!("{label}: {what}: {}", status_line(&s))))
            }
            Err(e) => Err(judge(m, &label, e)),
        }
    }

    /// The collection URL of `m`, from (cached) discovery of its apiVersion.
    async fn resolve(&mut self, m: &Manifest, started: Instant) -> Result<Target, Fail> {
        let av = m.api_version();
        if !self.groups.contains_key(av) {
            let gv: GroupVersion = av.parse().map_err(|_| {
                Fail::Stop(unknown(m, "the apiVersion is not group/version".into()))
            })?;
            let root = if gv.group.is_empty() { "api" } else { "apis" };
            let what = format!("GET /{root}/{av}");
            match self
                .timed(&what, discovery::pinned_group(self.client, &gv))
                .await
            {
                Ok(g) => self.groups.insert(av.to_string(), g),
                Err(CallError::Status(s, _)) if s.code == 404 => {
                    let detail = format!("{what}: {}", status_line(&s));
                    return Err(self.unknown_after_grace(m, started, detail));
                }
                Err(e) => return Err(judge(m, &m.label(), e)),
            };
        }
        let found = self.groups.get(av).and_then(|g| {
            let version = av.rsplit('/').next().unwrap_or(av);
            g.versioned_resources(version)
                .into_iter()
                .find(|(ar, _)| ar.kind == m.kind())
        });
        let Some((ar, caps)) = found else {
            // Forget it so the next try asks again: a CRD may be on its way.
            self.groups.remove(av);
            return Err(self.unknown_after_grace(
                m,
                started,
                format!("discovery of {av} has no kind {}", m.kind()),
            ));
        };
        let namespace = (caps.scope == Scope::Namespaced)
            .then(|| m.namespace().unwrap_or("default").to_string());
        Ok(Target { ar, namespace })
    }

    fn unknown_after_grace(&self, m: &Manifest, started: Instant, detail: String) -> Fail {
        if started.elapsed() >= self.opts.unknown_kind_grace {
            Fail::Stop(unknown(m, detail))
        } else {
            Fail::Retry(format!("{}: {detail}", m.label()))
        }
    }

    /// Waits until the CRD of `m` is Established and its list endpoint answers.
    async fn wait_crd(&mut self, m: &Manifest) -> Result<(), ApplyError> {
        let started = Instant::now();
        let what = || {
            format!(
                "CustomResourceDefinition {} from {} to be established and served",
                m.name(),
                m.origin()
            )
        };
        self.retrying(what, async |a: &mut Self| {
            let target = a.resolve(m, started).await?;
            let label = target.label(m.name());
            let live = a
                .call(target.request().get(m.name(), &GetParams::default()))
                .await
                .map_err(|e| judge(m, &label, e))?;
            let conditions = live.pointer("/status/conditions").and_then(Value::as_array);
            let established = conditions.into_iter().flatten().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            });
            if !established {
                return Err(Fail::Retry(format!(
                    "{label}: condition Established is not True yet"
                )));
            }
            let served = served_resource(&live).ok_or_else(|| {
                Fail::Stop(unknown(
                    m,
                    "the CRD has no served version, group or plural".into(),
                ))
            })?;
            let list = Request::new(DynamicObject::url_path(&served, None));
            match a.call(list.list(&ListParams::default().limit(1))).await {
                Ok(_) => Ok(()),
                Err(e) => Err(judge(m, &label, e)),
            }
        })
        .await
    }

    fn request_timeout(&self) -> Duration {
        let left = self.opts.deadline.saturating_duration_since(Instant::now());
        self.opts.request_timeout.min(left).max(MIN_REQUEST)
    }

    /// One request, bounded by the request timeout.
    async fn call(
        &self,
        req: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Value, CallError> {
        let req = req.map_err(|e| CallError::Build(error_chain(&e)))?;
        let what = format!("{} {}", req.method(), req.uri().path());
        self.timed(&what, self.client.request::<Value>(req)).await
    }

    /// `fut` (doing `what`), bounded by the request timeout.
    async fn timed<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, CallError> {
        let timeout = self.request_timeout();
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(kube::Error::Api(s))) => Err(CallError::Status(s, what.to_string())),
            Ok(Err(e)) => Err(CallError::Transport(format!("{what}: {}", error_chain(&e)))),
            Err(_) => Err(CallError::Transport(format!(
                "{what}: no answer within {timeout:?}"
            ))),
        }
    }
}

/// Whether a failure is worth another try, and how it reads.
fn judge(m: &Manifest, label: &str, e: CallError) -> Fail {
    match e {
        CallError::Transport(msg) => Fail::Retry(msg),
        CallError::Status(s, what) if matches!(s.code, 404 | 409 | 429 | 500 | 502 | 503 | 504) => {
            Fail::Retry(format!("{label}: {what}: {}", status_line(&s)))
        }
        CallError::Status(s, _) => Fail::Stop(ApplyError::Rejected {
            object: label.to_string(),
            origin: m.origin(),
            message: format!("refused by the api-server: {}", status_line(&s)),
        }),
        CallError::Build(msg) => Fail::Stop(ApplyError::Rejected {
            object: label.to_string(),
            origin: m.origin(),
            message: format!("cannot build the request: {msg}"),
        }),
    }
}

fn unknown(m: &Manifest, detail: String) -> ApplyError {
    ApplyError::UnknownKind {
        object: m.label(),
        origin: m.origin(),
        api_version: m.api_version().to_string(),
        kind: m.kind().to_string(),
        detail,
    }
}

fn status_line(s: &Status) -> String {
    format!("HTTP {} {}: {}", s.code, s.reason, s.message).replace('\n', " ")
}

fn to_vec(v: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its map keys are strings.
    serde_json::to_vec(v).unwrap_or_default()
}

/// The custom resource a live CRD serves: its first served version.
fn served_resource(crd: &Value) -> Option<ApiResource> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let version = match spec.get("versions").and_then(Value::as_array) {
        Some(vs) => vs
            .iter()
            .find(|v| v.get("served").and_then(Value::as_bool) != Some(false))?
            .get("name")?
            .as_str()?,
        None => spec.get("version")?.as_str()?,
    };
    let names = spec.get("names")?;
    Some(ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: format!("{group}/{version}"),
        kind: names.get("kind")?.as_str()?.to_string(),
        plural: names.get("plural")?.as_str()?.to_string(),
    })
}

/// Whether `live` already holds every field `want` sets (nulls in `want` set nothing;
/// lists must match element by element).
fn contains(live: &Value, want: &Value) -> bool {
    match (live, want) {
        (_, Value::Null) => true,
        (Value::Object(l), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| l.get(k).map_or(wv.is_null(), |lv| contains(lv, wv))),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(lv, wv)| contains(lv, wv))
        }
        (Value::Number(l), Value::Number(w)) => l == w || l.as_f64() == w.as_f64(),
        _ => live == want,
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
