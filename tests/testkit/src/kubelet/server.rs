//! The kubelet's HTTP endpoints. `/healthz` on `--healthz-port` (plain HTTP, no
//! authentication: what `start` and systemd units poll). `/pods` (a `v1.PodList`) and
//! `/healthz` on `--port`, which is HTTPS with the kubelet API's authentication and
//! authorization ([`super::webhook`]) in front of every path, as upstream's
//! `ListenAndServeKubeletServer` with `InstallAuthFilter`; and on `--read-only-port`,
//! plain HTTP without authentication (`ListenAndServeKubeletReadOnlyServer`). The serving
//! pair is `--tls-cert-file`/`--tls-private-key-file`, or as upstream a self-signed
//! `kubelet.crt`/`kubelet.key` kept in `--cert-dir` (`<root-dir>/pki`). A port of 0 is
//! not served.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::Shared;
use super::auth::User;
use super::webhook::KubeletAuth;
use crate::apiserver::tls;

/// Binds every configured port (failing fast if one is taken) and serves them.
pub async fn start(shared: &Arc<Shared>) -> Result<Vec<JoinHandle<()>>> {
    let cfg = &shared.cfg;
    let mut tasks = Vec::new();
    let bind = |port: u16| async move {
        TcpListener::bind((cfg.node_ip, port))
            .await
            .with_context(|| format!("binding {}:{port}", cfg.node_ip))
    };
    // Everything 10250 needs is ready before any port is bound: whoever sees /healthz
    // answer may ask 10250 next.
    let secure = if cfg.port != 0 {
        let acceptor = tokio_rustls::TlsAcceptor::from(serving_config(cfg)?);
        Some((
            bind(cfg.port).await?,
            acceptor,
            KubeletAuth::new(cfg).await?,
        ))
    } else {
        None
    };
    let read_only = match cfg.read_only_port {
        0 => None,
        p => Some(bind(p).await?),
    };
    if let Some((l, acceptor, auth)) = secure {
        tasks.push(tokio::spawn(serve_secure(
            l,
            acceptor,
            shared.clone(),
            auth,
        )));
    }
    if let Some(l) = read_only {
        tasks.push(tokio::spawn(serve_plain(l, shared.clone(), true)));
    }
    if cfg.healthz_port != 0 {
        let l = bind(cfg.healthz_port).await?;
        tasks.push(tokio::spawn(serve_plain(l, shared.clone(), false)));
    }
    Ok(tasks)
}

/// The rustls config for 10250: client certificates optional (bearer tokens and
/// anonymous requests complete the handshake), verified against `--client-ca-file`.
fn serving_config(cfg: &super::Config) -> Result<Arc<rustls::ServerConfig>> {
    let a = &cfg.auth;
    let (cert, key) = match (&a.tls_cert_file, &a.tls_private_key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = a
                .cert_dir
                .clone()
                .unwrap_or_else(|| cfg.root_dir.join("pki"));
            self_signed(&dir, &cfg.node_name, &cfg.node_ip.to_string())?
        }
    };
    tls::server_config(Some(&cert), Some(&key), a.client_ca_file.as_deref())
}

/// Upstream's fallback: `kubelet.crt`/`kubelet.key` in the cert dir, created once.
fn self_signed(
    dir: &Path,
    host: &str,
    ip: &str,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (crt, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if crt.exists() && key.exists() {
        return Ok((crt, key));
    }
    let sans = vec![host.to_string(), ip.to_string()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(sans)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    write_synced(&key, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_synced(&crt, cert.pem().as_bytes(), 0o644)?;
    Ok((crt, key))
}

/// Temp file with `mode`, fsync, rename.
fn write_synced(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn serve_plain(listener: TcpListener, shared: Arc<Shared>, pods: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&shared, req.uri().path(), pods)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn serve_secure(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    auth: Arc<KubeletAuth>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tls_conn(
            stream,
            acceptor.clone(),
            shared.clone(),
            auth.clone(),
        ));
    }
}

async fn serve_tls_conn(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    auth: Arc<KubeletAuth>,
) {
    let timeout = std::time::Duration::from_secs(10);
    let Ok(Ok(conn)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await else {
        return;
    };
    let cert_user = conn
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(tls::user_from_cert)
        .map(|u| User::new(&u.name, u.groups));
    let svc = service_fn(move |req: Request<Incoming>| {
        let (shared, auth, cert_user) = (shared.clone(), auth.clone(), cert_user.clone());
        async move {
            let header = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let path = req.uri().path();
            let r = match auth
                .check(cert_user, header, req.method().as_str(), path)
                .await
            {
                Ok(_) => route(&shared, path, true),
                Err(refusal) => {
                    let (code, body) = refusal.status_and_body();
                    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN);
                    reply(code, "text/plain; charset=utf-8", body.into_bytes())
                }
            };
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(conn), svc)
        .await;
}

fn reply(code: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(shared: &Shared, path: &str, pods: bool) -> Response<Full<Bytes>> {
    match path {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_is_made_once_in_a_private_dir() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("pki");
        let (crt, key) = self_signed(&dir, "node1", "127.0.0.5").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&key), 0o600);
        let first = std::fs::read(&crt).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&first).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let sans = format!(
            "{:?}",
            cert.subject_alternative_name().unwrap().unwrap().value
        );
        assert!(
            sans.contains("\"node1\"") && sans.contains("[127, 0, 0, 5]"),
            "{sans}"
        );
        self_signed(&dir, "node1", "127.0.0.5").unwrap();
        assert_eq!(
            std::fs::read(&crt).unwrap(),
            first,
            "an existing pair is kept"
        );
    }
}
