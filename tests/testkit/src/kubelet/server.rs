//! The kubelet's HTTP endpoints: `/healthz` on `--healthz-port` (what `start` and
//! systemd units poll), and `/pods` as a `v1.PodList` on `--port` and `--read-only-port`
//! (what the checkpointer reads, falling back from 10250 to 10255). All are plain HTTP on
//! the node IP with no authentication: the real 10250 is HTTPS with webhook authn/z, but
//! the checkpointer skips TLS verification anyway, and a double must not need the
//! api-server to answer (bootkube #1025). A port of 0 is not served.

use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Shared;

/// Binds every configured port (failing fast if one is taken) and serves them.
pub async fn start(shared: &Arc<Shared>) -> Result<Vec<JoinHandle<()>>> {
    let cfg = &shared.cfg;
    let mut tasks = Vec::new();
    for (port, pods) in [
        (cfg.healthz_port, false),
        (cfg.port, true),
        (cfg.read_only_port, true),
    ] {
        if port == 0 {
            continue;
        }
        let addr = (cfg.node_ip, port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {}:{port}", cfg.node_ip))?;
        tasks.push(tokio::spawn(serve(listener, shared.clone(), pods)));
    }
    Ok(tasks)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, pods: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, &req, pods)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(code: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn handle(shared: &Shared, req: &Request<Incoming>, pods: bool) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" | "/healthz/" => reply(StatusCode::OK, "text/plain", b"ok".to_vec()),
        "/pods" | "/pods/" if pods => {
            let items: Vec<_> = shared.snapshot().into_iter().map(|(_, p)| p).collect();
            let list = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
            reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&list).unwrap_or_default(),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"404 page not found\n".to_vec(),
        ),
    }
}
