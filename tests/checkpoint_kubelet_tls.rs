//! The checkpointer's kubelet client sends the kubeconfig's credentials to the secure port
//! only once the listener has proved it is the kubelet: its serving certificate must be
//! signed by the CA (`--kubelet-ca-file`, else the kubeconfig's cluster CA). Port 10250 is
//! not privileged; anyone who binds it while the kubelet restarts must get no token.
//!
//! Each listener here records whether its TLS handshake completed and every byte of
//! HTTP it could read, so "no Authorization header" is checked on the listener's side.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubeboot::checkpoint::kubelet::Kubelet;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "kubelet-test-token-do-not-send";

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A serving certificate for 127.0.0.1 signed by `ca`: (chain, key).
fn serving(
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "kubelet");
    let cert = p.signed_by(&key, ca).unwrap();
    (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

#[derive(Default)]
struct Seen {
    handshakes_ok: usize,
    handshakes_failed: usize,
    request: Vec<u8>,
}

/// A TLS listener on 127.0.0.1 answering `/pods` with an empty PodList.
async fn listener(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = tcp.accept().await else {
                continue;
            };
            let record = record.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(stream).await {
                    Ok(t) => t,
                    Err(_) => {
                        record.lock().unwrap().handshakes_failed += 1;
                        return;
                    }
                };
                record.lock().unwrap().handshakes_ok += 1;
                let mut buf = vec![0u8; 16384];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                record.lock().unwrap().request.extend_from_slice(&got);
                let body = br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, seen)
}

/// A kubeconfig trusting `ca` for its cluster, with a bearer token.
fn kubeconfig(dir: &Path, ca: &CertifiedIssuer<'static, KeyPair>) -> std::path::PathBuf {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(ca.pem());
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: {data}\nusers:\n- name: u\n  user:\n    token: {TOKEN}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

async fn client(kc: &Path, addr: SocketAddr, ca_file: Option<&Path>) -> Kubelet {
    Kubelet::new(
        kc,
        Some(&format!("https://{addr}")),
        ca_file,
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_listener_the_ca_did_not_sign_gets_no_request_and_no_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cluster_ca = ca("cluster CA");
    let rogue_ca = ca("someone else");
    let kc = kubeconfig(dir.path(), &cluster_ca);

    // Someone bound 10250 with a certificate of their own.
    let (chain, key) = serving(&rogue_ca);
    let (addr, seen) = listener(chain, key).await;
    let err = client(&kc, addr, None).await.pods().await.unwrap_err();
    assert!(err.contains(&format!("https://{addr}/pods")), "{err}");
    // The listener notes the failed handshake in its own task: poll for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().handshakes_failed == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no handshake was attempted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.handshakes_ok, 0, "the handshake must fail");
        assert!(
            s.request.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&s.request)
        );
    }

    // The real kubelet, its serving certificate signed by the cluster CA: the token goes.
    let (chain, key) = serving(&cluster_ca);
    let (addr, seen) = listener(chain, key).await;
    let pods = client(&kc, addr, None).await.pods().await.unwrap();
    assert!(pods.is_empty());
    let request = String::from_utf8_lossy(&seen.lock().unwrap().request).to_lowercase();
    assert!(request.starts_with("get /pods"), "{request}");
    assert!(
        request.contains(&format!("authorization: bearer {}", TOKEN.to_lowercase())),
        "{request}"
    );
}

#[tokio::test]
async fn kubelet_ca_file_replaces_the_kubeconfigs_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cluster_ca = ca("cluster CA");
    let kubelet_ca = ca("kubelet serving CA");
    let kc = kubeconfig(dir.path(), &cluster_ca);
    let ca_file = dir.path().join("kubelet-ca.crt");
    std::fs::write(&ca_file, kubelet_ca.pem()).unwrap();

    let (chain, key) = serving(&kubelet_ca);
    let (addr, seen) = listener(chain, key).await;
    client(&kc, addr, Some(&ca_file))
        .await
        .pods()
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().handshakes_ok, 1);

    // The cluster CA alone is then not trusted for the kubelet.
    let (chain, key) = serving(&cluster_ca);
    let (addr, seen) = listener(chain, key).await;
    assert!(
        client(&kc, addr, Some(&ca_file))
            .await
            .pods()
            .await
            .is_err()
    );
    let s = seen.lock().unwrap();
    assert_eq!(s.handshakes_ok, 0);
    assert!(s.request.is_empty());
}

#[tokio::test]
async fn plain_http_is_refused_for_the_secure_port_and_a_missing_ca_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_ca = ca("cluster CA");
    let kc = kubeconfig(dir.path(), &cluster_ca);
    let plain = Kubelet::new(
        &kc,
        Some("http://127.0.0.1:10250"),
        None,
        None,
        Duration::from_secs(1),
    )
    .await;
    assert!(plain.is_err_and(|e| e.contains("https")));
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "").unwrap();
    let none = Kubelet::new(
        &kc,
        Some("https://127.0.0.1:10250"),
        Some(&empty),
        None,
        Duration::from_secs(1),
    )
    .await;
    assert!(none.is_err_and(|e| e.contains("no PEM certificate")));
}
