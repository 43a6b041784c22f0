//! Readiness probes, because `Ready` (not just `Running`) is what Services, the scheduler's
//! view and careful waits rely on. `httpGet` and `tcpSocket` are run against the probe's
//! `host` or the node IP (every pod here is effectively hostNetwork). HTTPS `httpGet`
//! probes are checked as a TCP connect: the real kubelet does not verify the certificate
//! either, so a listening TLS server counts as up. `exec` and `grpc` probes count as
//! success. Liveness and startup probes are not run.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Probe timing with the kubelet's defaults; the period is at least 1 s.
pub fn timing(p: &Probe) -> (Duration, Duration, u32) {
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    let initial = secs(p.initial_delay_seconds, 0);
    let period = secs(p.period_seconds, 10).max(Duration::from_secs(1));
    let failures = p.failure_threshold.unwrap_or(3).max(1) as u32;
    (initial, period, failures)
}

fn port(c: &Container, p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name))
            .and_then(|cp| u16::try_from(cp.container_port).ok()),
    }
}

/// Runs one probe; true is success.
pub async fn run(c: &Container, p: &Probe, node_ip: &str) -> bool {
    let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
    let fut = async {
        if let Some(h) = &p.http_get {
            let host = h.host.clone().unwrap_or_else(|| node_ip.to_string());
            let Some(port) = port(c, &h.port) else {
                return false;
            };
            let Ok(mut s) = TcpStream::connect((host.as_str(), port)).await else {
                return false;
            };
            if h.scheme.as_deref() == Some("HTTPS") {
                return true;
            }
            let path = h.path.as_deref().unwrap_or("/");
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.35\r\nConnection: close\r\n\r\n"
            );
            if s.write_all(req.as_bytes()).await.is_err() {
                return false;
            }
            let mut buf = [0u8; 32];
            let mut n = 0;
            while n < 12 {
                match s.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            let line = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = line.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
            (200..400).contains(&code)
        } else if let Some(t) = &p.tcp_socket {
            let host = t.host.clone().unwrap_or_else(|| node_ip.to_string());
            let Some(port) = port(c, &t.port) else {
                return false;
            };
            TcpStream::connect((host.as_str(), port)).await.is_ok()
        } else {
            true
        }
    };
    tokio::time::timeout(timeout, fut).await.unwrap_or(false)
}
