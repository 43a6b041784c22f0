//! Watches as kube-apiserver streams them: newline-delimited
//! `{"type":...,"object":...}` from an etcd watch that starts right after the client's
//! `resourceVersion` (or with synthetic ADDED events for the current state when it gave
//! none or "0"), DELETED/ADDED when an object leaves/enters a selector, and an ERROR
//! event with a 410 `Expired` Status when etcd has compacted the requested revision, so
//! informers relist exactly as they do against a real server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::EventType;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::selectors::Selector;
use super::status::ApiError;
use super::store::{Store, set_resource_version};

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

/// Starts the watch; the receiver yields the response body's lines.
pub fn start(store: Arc<Store>, spec: WatchSpec) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(spec.timeout);
        tokio::select! {
            _ = run(&store, &spec, &tx) => {}
            _ = deadline => {}
            _ = tx.closed() => {}
        }
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

async fn run(store: &Store, spec: &WatchSpec, tx: &mpsc::Sender<Bytes>) {
    let send = |b: Bytes| async move { tx.send(b).await.is_ok() };
    let error = |e: ApiError| line("ERROR", e.to_status());
    let start = match spec.since {
        Some(rv) => rv + 1,
        None => match store.list(&spec.prefix, None, 0).await {
            Ok((items, rev)) => {
                for s in items
                    .into_iter()
                    .filter(|s| spec.selector.matches(&s.object))
                {
                    if !send(line("ADDED", (spec.render)(s.object))).await {
                        return;
                    }
                }
                if spec.initial_events_end && !send(bookmark(spec, rev, true)).await {
                    return;
                }
                rev + 1
            }
            Err(e) => {
                send(error(e)).await;
                return;
            }
        },
    };
    let stream = match store.watch(&spec.prefix, start).await {
        Ok(s) => s,
        Err(e) => {
            send(error(e)).await;
            return;
        }
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
            Ok(None) => {
                crate::note!(
                    "fake-apiserver: watch of {} from {start}: etcd ended it",
                    spec.prefix
                );
                return;
            }
            Err(e) => {
                crate::note!(
                    "fake-apiserver: watch of {} from {start}: etcd: {e}",
                    spec.prefix
                );
                send(error(ApiError::internal(format!("etcd watch: {e}")))).await;
                return;
            }
        };
        if resp.created() {
            let rev = resp.header().map_or(0, |h| h.revision());
            if start > rev + 1 {
                crate::note!(
                    "fake-apiserver: watch of {} from {start}: etcd is only at revision {rev}",
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
            send(error(ApiError::new(410, "Expired", msg))).await;
            return;
        }
        if resp.events().is_empty() && !resp.created() && spec.bookmarks {
            let rev = resp.header().map_or(0, |h| h.revision());
            if !send(bookmark(spec, rev, false)).await {
                return;
            }
        }
        for ev in resp.events() {
            match convert(store, spec, ev) {
                Ok(Some((kind, obj))) => {
                    if !send(line(kind, (spec.render)(obj))).await {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    send(error(e)).await;
                    return;
                }
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
