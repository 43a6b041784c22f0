//! REST paths and read verbs. Served: get, list (label and field selectors, all
//! namespaces, `limit`/`continue`), watch (`?watch=true` and `/watch/` paths) for the
//! resources in `discovery::RESOURCES` and custom resources of established CRDs (served
//! at every served version with the `None` conversion: only `apiVersion` changes);
//! writes are in `write.rs`. Not served:
//! deletecollection, server-side apply semantics (treated as a merge patch), protobuf
//! responses (406; `k8s\0` protobuf request bodies are decoded with the codec), Table printing (plain objects, see `table.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Reply;
use super::discovery::{self, ApiResource};
use super::selectors::Selector;
use super::status::{ApiError, ApiResult};
use super::store::Store;
use super::{table, watch, write};

/// A watch without `timeoutSeconds` ends after this (the real server picks 30–60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// The parts of an HTTP request the handlers read.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub accept: &'a str,
    pub content_type: &'a str,
    pub body: Bytes,
    /// Set when a node makes the request: NodeRestriction's checks on updates and patches.
    pub by_node: Option<super::noderestriction::NodeWrite>,
}

/// What a resource path names.
pub struct Target {
    pub res: &'static ApiResource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
    pub watch: bool,
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn target(
    group: &str,
    version: &str,
    segs: &[&str],
    custom: &[&'static ApiResource],
) -> ApiResult<Target> {
    let (watch, segs) = match segs {
        ["watch", rest @ ..] => (true, rest),
        s => (false, s),
    };
    let (namespace, rest) = match segs {
        ["namespaces", ns, plural, ..]
            if discovery::find(group, version, plural, custom).is_some() =>
        {
            (Some(ns.to_string()), &segs[2..])
        }
        s => (None, s),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(not_found()),
    };
    let res = discovery::find(group, version, plural, custom).ok_or_else(not_found)?;
    let scoped_ok = res.namespaced == namespace.is_some() || (res.namespaced && name.is_none());
    let sub_ok = match sub.as_deref() {
        None => true,
        Some("status") => res.status,
        Some("binding") => res.kind == "Pod",
        Some(_) => false,
    };
    if !scoped_ok || !sub_ok || (watch && sub.is_some()) {
        return Err(not_found());
    }
    Ok(Target {
        res,
        namespace,
        name,
        sub,
        watch,
    })
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query parameters (the last value of a repeated one wins).
pub fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (pct_decode(k), pct_decode(v)),
            None => (pct_decode(p), String::new()),
        })
        .collect()
}

pub async fn handle(
    store: &Arc<Store>,
    custom: &[&'static ApiResource],
    group: &str,
    version: &str,
    segs: &[&str],
    req: &Incoming<'_>,
) -> Reply {
    match dispatch(store, custom, group, version, segs, req).await {
        Ok(r) => r,
        Err(e) => e.into(),
    }
}

async fn dispatch(
    store: &Arc<Store>,
    custom: &[&'static ApiResource],
    group: &str,
    version: &str,
    segs: &[&str],
    req: &Incoming<'_>,
) -> ApiResult<Reply> {
    let t = target(group, version, segs, custom)?;
    let q = query(req.query);
    let acceptable =
        req.accept.is_empty() || req.accept.contains("json") || req.accept.contains("*/*");
    if !acceptable {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json (asked for {})",
                req.accept
            ),
        ));
    }
    let watching = t.watch || matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    match (req.method, t.name.is_some(), t.sub.as_deref()) {
        ("GET", _, None) if watching => watch(store, &t, &q),
        ("GET", true, None | Some("status")) => get(store, &t, req).await,
        ("GET", false, None) => list(store, &t, &q, req).await,
        ("POST", false, None) => write::create(store, &t, &q, req).await,
        ("POST", true, Some("binding")) => write::bind(store, &t, req).await,
        ("PUT", true, None | Some("status")) => write::update(store, &t, &q, req).await,
        ("PATCH", true, None | Some("status")) => write::patch(store, &t, &q, req).await,
        ("DELETE", true, None) => write::delete(store, &t, &q, req).await,
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({} {})",
                req.method, req.path
            ),
        )),
    }
}

/// The etcd key of the named object (`kubeboot::registry`'s layout, see
/// `ApiResource::segment`).
pub fn key(store: &Store, t: &Target) -> ApiResult<String> {
    let name = t.name.as_deref().unwrap_or_default();
    if name.is_empty() || name.contains('/') {
        return Err(ApiError::bad_request(format!(
            "{} has an invalid name {name:?}",
            t.res.kind
        )));
    }
    Ok(match t.namespace.as_deref().filter(|_| t.res.namespaced) {
        Some(ns) => format!("{}/{}/{ns}/{name}", store.prefix, t.res.segment()),
        None => format!("{}/{}/{name}", store.prefix, t.res.segment()),
    })
}

/// The etcd prefix of a list or watch (one namespace or all).
fn list_prefix(store: &Store, t: &Target) -> ApiResult<String> {
    let segment = t.res.segment();
    Ok(match &t.namespace {
        Some(ns) => kubeboot::registry::namespace_prefix(&store.prefix, &segment, ns),
        None => format!("{}/{segment}/", store.prefix),
    })
}

async fn get(store: &Store, t: &Target, req: &Incoming<'_>) -> ApiResult<Reply> {
    let name = t.name.as_deref().unwrap_or_default();
    match store.get(&key(store, t)?).await? {
        Some(s) => Ok(Reply::Json(200, render(req, t.res, s.object))),
        None => Err(ApiError::not_found(t.res.group, t.res.plural, name)),
    }
}

/// A custom resource read at another served version than it was written at (the
/// `None` conversion strategy).
pub fn convert(res: &ApiResource, mut object: Value) -> Value {
    if res.custom && object.get("apiVersion").is_some() {
        object["apiVersion"] = json!(res.api_version());
    }
    object
}

fn render(req: &Incoming<'_>, res: &ApiResource, object: Value) -> Value {
    let object = convert(res, object);
    if table::wanted(req.accept) {
        table::render(object)
    } else {
        object
    }
}

fn selector(t: &Target, q: &HashMap<String, String>) -> ApiResult<Selector> {
    let mut fields = q.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(name) = &t.name {
        if !fields.is_empty() {
            fields.push(',');
        }
        fields.push_str(&format!("metadata.name={name}"));
    }
    Selector::parse(
        t.res.kind,
        q.get("labelSelector").map(String::as_str),
        Some(&fields),
    )
}

const CONTINUE_VERSION: &str = "meta.k8s.io/v1";

/// `continue` tokens look like the real server's: base64 of `{v, rv, start}`.
fn continue_token(rev: i64, start: &str) -> String {
    let raw = json!({"v": CONTINUE_VERSION, "rv": rev, "start": start}).to_string();
    base64::engine::general_purpose::URL_SAFE.encode(raw)
}

fn parse_continue(token: &str, prefix: &str) -> ApiResult<(String, i64)> {
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    match (v["v"].as_str(), v["rv"].as_i64(), v["start"].as_str()) {
        (Some(CONTINUE_VERSION), Some(rv), Some(start)) if rv > 0 => {
            Ok((format!("{prefix}{start}"), rv))
        }
        _ => Err(bad()),
    }
}

async fn list(
    store: &Store,
    t: &Target,
    q: &HashMap<String, String>,
    req: &Incoming<'_>,
) -> ApiResult<Reply> {
    let sel = selector(t, q)?;
    let prefix = list_prefix(store, t)?;
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (start, at) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let (s, rv) = parse_continue(c, &prefix)?;
            (Some(s), rv)
        }
        None => (None, 0),
    };
    let (stored, rev) = store.list(&prefix, start.as_deref(), at).await?;
    let mut items = Vec::new();
    let mut next = None;
    for s in stored.into_iter().filter(|s| sel.matches(&s.object)) {
        if limit.is_some_and(|l| items.len() >= l) {
            next = Some(continue_token(
                rev,
                &format!("{}\u{0}", last_key(&items, &prefix)),
            ));
            break;
        }
        items.push(s);
    }
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|s| {
            let mut o = s.object;
            if let Some(m) = o.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            o
        })
        .collect();
    let list = json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(),
        "metadata": meta, "items": items});
    Ok(Reply::Json(200, render(req, t.res, list)))
}

fn last_key<'a>(items: &'a [super::store::Stored], prefix: &str) -> &'a str {
    items
        .last()
        .map_or("", |s| s.key.strip_prefix(prefix).unwrap_or(&s.key))
}

fn watch(store: &Arc<Store>, t: &Target, q: &HashMap<String, String>) -> ApiResult<Reply> {
    let since = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(rv) => Some(
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let flag = |n: &str| q.get(n).is_some_and(|v| v == "true" || v == "1");
    let res = t.res;
    let spec = watch::WatchSpec {
        prefix: list_prefix(store, t)?,
        since,
        selector: selector(t, q)?,
        timeout,
        bookmarks: flag("allowWatchBookmarks"),
        initial_events_end: flag("sendInitialEvents"),
        api_version: t.res.api_version(),
        kind: t.res.kind.to_string(),
        render: Arc::new(move |o| convert(res, o)),
    };
    Ok(Reply::Stream(watch::start(store.clone(), spec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources() {
        let t = target(
            "",
            "v1",
            &["namespaces", "kube-system", "pods", "p", "status"],
            &[],
        )
        .unwrap();
        assert_eq!(
            (t.res.kind, t.namespace.as_deref(), t.sub.as_deref()),
            ("Pod", Some("kube-system"), Some("status"))
        );
        let t = target("", "v1", &["namespaces", "x", "status"], &[]).unwrap();
        assert_eq!((t.res.kind, t.name.as_deref()), ("Namespace", Some("x")));
        let t = target("apps", "v1", &["watch", "deployments"], &[]).unwrap();
        assert!(t.watch && t.namespace.is_none());
        assert!(target("", "v1", &["pods", "p"], &[]).is_err());
        assert!(target("", "v1", &["namespaces", "a", "nodes", "n"], &[]).is_err());
        assert!(
            target(
                "",
                "v1",
                &["namespaces", "a", "secrets", "s", "status"],
                &[]
            )
            .is_err()
        );
        assert!(target("", "v1", &["widgets"], &[]).is_err());
    }

    #[test]
    fn queries_are_decoded() {
        let q = query("labelSelector=a%20in%20(x%2Cy)&watch=1&fieldSelector=metadata.name%3Dp");
        assert_eq!(q["labelSelector"], "a in (x,y)");
        assert_eq!(q["fieldSelector"], "metadata.name=p");
        assert_eq!(pct_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = continue_token(7, "ns/p\u{0}");
        assert_eq!(
            parse_continue(&t, "/r/pods/").unwrap(),
            ("/r/pods/ns/p\u{0}".into(), 7)
        );
        assert!(parse_continue("!!", "/r/").is_err());
    }
}
