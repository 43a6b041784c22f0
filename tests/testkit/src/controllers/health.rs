//! `/healthz` for both doubles, on `--bind-address:--secure-port`. The real components
//! serve it over HTTPS with delegated authentication; here it is plain HTTP, no
//! authentication, and every other path is a 404 (the fake-kubelet does not run
//! liveness probes, so only tests and humans read it). `--secure-port 0` disables it.
//!
//! When `KUBEBOOT_TESTKIT_NODE_IP` is set (the fake-kubelet sets it for the pods it
//! runs, standing in for the node's own network namespace), an unspecified bind address
//! (`0.0.0.0` or `::`) means that IP, so several "nodes" on one machine do not collide.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const NODE_IP_ENV: &str = "KUBEBOOT_TESTKIT_NODE_IP";

/// The address to bind: `addr`, or the node IP from `node_ip` when `addr` is
/// unspecified and `node_ip` parses.
pub fn resolve_bind(addr: IpAddr, node_ip: Option<&str>) -> IpAddr {
    match node_ip.and_then(|s| s.trim().parse::<IpAddr>().ok()) {
        Some(ip) if addr.is_unspecified() => ip,
        _ => addr,
    }
}

/// Binds now (so a taken port is a startup error, unless every holder permits port
/// sharing: `listen.rs`) and serves in the background.
pub async fn serve(
    component: &'static str,
    addr: IpAddr,
    port: u16,
    permit_port_sharing: bool,
) -> Result<Option<SocketAddr>> {
    if port == 0 {
        return Ok(None);
    }
    let node_ip = std::env::var(NODE_IP_ENV).ok();
    let ip = resolve_bind(addr, node_ip.as_deref());
    let listener = crate::listen::bind((ip, port).into(), permit_port_sharing)
        .with_context(|| format!("binding {ip}:{port}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                loop {
                    let head = buf.get(..n).unwrap_or_default();
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                    let Some(rest) = buf.get_mut(n..).filter(|r| !r.is_empty()) else {
                        break;
                    };
                    match conn.read(rest).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (code, body) = match path.split('?').next() {
                    Some("/healthz" | "/livez" | "/readyz") => ("200 OK", "ok"),
                    _ => ("404 Not Found", "404 page not found\n"),
                };
                let reply = format!(
                    "HTTP/1.1 {code}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    crate::note!("{component}: serving /healthz on http://{bound}");
    Ok(Some(bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ip_replaces_only_unspecified_addresses() {
        let any4: IpAddr = [0, 0, 0, 0].into();
        let any6: IpAddr = "::".parse().unwrap_or(any4);
        let lo: IpAddr = [127, 0, 0, 1].into();
        let node: IpAddr = [127, 0, 0, 2].into();
        assert_eq!(resolve_bind(any4, Some("127.0.0.2")), node);
        assert_eq!(resolve_bind(any6, Some("127.0.0.2")), node);
        assert_eq!(resolve_bind(lo, Some("127.0.0.2")), lo);
        assert_eq!(resolve_bind(any4, None), any4);
        assert_eq!(resolve_bind(any4, Some("garbage")), any4);
    }
}
