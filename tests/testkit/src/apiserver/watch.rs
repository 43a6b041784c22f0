//! Watches as kube-apiserver streams them: newline-delimited
//! `{"type":...,"object":...}` from an etcd watch that starts right after the client's
//! `resourceVersion` (or with synthetic ADDED events for the current state when it gave
//! none or "0"), DELETED/ADDED when an object leaves/enters a selector, and an ERROR
//! event with a 410 `Expired` Status when etcd has compacted the requested revision, so
//! informers relist exactly as they do against a real server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::EventType;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::selectors::Selector;
use super::status::ApiError;
use super::store::{Store, set_resource_version};

/// Why a watch ended when its client stopped reading.
const GONE: &str = "the client went away";

/// How often a bookmark is sent when the client allowed them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Turns stored objects into what the client asked for (plain or a Table row).
pub type Render = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// One watch request.
pub struct WatchSpec {
    pub prefix: String,
    /// The client's `resourceVersion`; `None` for "" or "0" (send the current state).
    pub since: Option<i64>,
    pub selector: Selector,
    pub timeout: Duration,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial events with a marked bookmark.
    pub initial_events_end: bool,
    pub api_version: String,
    pub kind: String,
    pub render: Render,
}

/// Numbers the watches in this process's log.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Starts the watch; the receiver yields the response body's lines. Each watch is
/// logged when it opens and when it closes, with why: a drill whose kubelet missed an
/// event reads there which watch it was on.
pub fn start(store: Arc<Store>, spec: WatchSpec) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let from = spec.since.map_or("now".to_string(), |rv| rv.to_string());
    crate::note!(
        "fake-apiserver: watch {id} of {} from {from}: opened",
        spec.prefix
    );
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(spec.timeout);
        let why = tokio::select! {
            why = run(&store, &spec, &tx) => why,
            _ = deadline => "its timeout passed".to_string(),
            _ = tx.closed() => GONE.to_string(),
        };
        crate::note!("fake-apiserver: watch {id}: closed: {why}");
    });
    rx
}

fn line(kind: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn bookmark(spec: &WatchSpec, rev: i64, end_of_initial: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if end_of_initial {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({"kind": spec.kind, "apiVersion": spec.api_version, "metadata": meta}),
    )
}

/// Streams until the watch ends; returns why it did.
async fn run(store: &Store, spec: &WatchSpec, tx: &mpsc::Sender<Bytes>) -> String {
    let send = |b: Bytes| async move { tx.send(b).await.is_ok() };
    // An ERROR event ends the watch, as upstream's does.
    let failed = |e: ApiError| async move {
        let why = format!("sent ERROR {} {}", e.code, e.message);
        send(line("ERROR", e.to_status())).await;
        why
    };
    let start = match spec.since {
        Some(rv) => rv + 1,
        None => match store.list(&spec.prefix, None, 0).await {
            Ok((items, rev)) => {
                for s in items
                    .into_iter()
                    .filter(|s| spec.selector.matches(&s.object))
                {
                    if !send(line("ADDED", (spec.render)(s.object))).await {
                        return GONE.into();
                    }
                }
                if spec.initial_events_end && !send(bookmark(spec, rev, true)).await {
                    return GONE.into();
                }
                rev + 1
            }
            Err(e) => return failed(e).await,
        },
    };
    let stream = match store.watch(&spec.prefix, start).await {
        Ok(s) => s,
        Err(e) => return failed(e).await,
    };
    let (mut requests, mut responses) = stream.split();
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        let resp = tokio::select! {
            r = responses.message() => r,
            _ = ticker.tick(), if spec.bookmarks => {
                let _ = requests.request_progress().await;
                continue;
            }
        };
        let resp = match resp {
            Ok(Some(r)) => r,
            Ok(None) => return "etcd ended its watch".into(),
            Err(e) => return failed(ApiError::internal(format!("etcd watch: {e}"))).await,
        };
        if resp.created() {
            let rev = resp.header().map_or(0, |h| h.revision());
            if start > rev + 1 {
                crate::note!(
                    "fake-apiserver: a watch of {} from {start} waits: etcd is at {rev}",
                    spec.prefix
                );
            }
        }
        if resp.compact_revision() > 0 || resp.canceled() {
            let msg = format!(
                "too old resource version: {} ({})",
                start - 1,
                resp.compact_revision()
            );
            return failed(ApiError::new(410, "Expired", msg)).await;
        }
        if resp.events().is_empty() && !resp.created() && spec.bookmarks {
            let rev = resp.header().map_or(0, |h| h.revision());
            if !send(bookmark(spec, rev, false)).await {
                return GONE.into();
            }
        }
        for ev in resp.events() {
            match convert(store, spec, ev) {
                Ok(Some((kind, obj))) => {
                    if !send(line(kind, (spec.render)(obj))).await {
                        return GONE.into();
                    }
                }
                Ok(None) => {}
                Err(e) => return failed(e).await,
            }
        }
    }
}

/// The watch event an etcd event becomes for this client, if any.
fn convert(
    store: &Store,
    spec: &WatchSpec,
    ev: &etcd_client::Event,
) -> Result<Option<(&'static str, Value)>, ApiError> {
    let Some(kv) = ev.kv() else {
        return Ok(None);
    };
    let prev = match ev.prev_kv() {
        Some(p) => Some(store.decode(p.key(), p.value(), p.mod_revision())?),
        None => None,
    };
    let prev_match = prev.as_ref().map(|p| spec.selector.matches(p));
    if ev.event_type() == EventType::Delete {
        let Some(mut obj) = prev.filter(|_| prev_match == Some(true)) else {
            return Ok(None);
        };
        set_resource_version(&mut obj, kv.mod_revision());
        return Ok(Some(("DELETED", obj)));
    }
    let obj = store.decode(kv.key(), kv.value(), kv.mod_revision())?;
    let now = spec.selector.matches(&obj);
    let created = kv.create_revision() == kv.mod_revision();
    let before = if created {
        false
    } else {
        prev_match.unwrap_or(now)
    };
    Ok(match (before, now) {
        (true, true) => Some(("MODIFIED", obj)),
        (false, true) => Some(("ADDED", obj)),
        (true, false) => Some(("DELETED", obj)),
        (false, false) => None,
    })
}
