//! The harness's side of the kubelet's 10250: one CA per test process that signs each
//! fake kubelet's serving certificate (so the harness verifies whom it talks to) and the
//! harness's own client certificate (CN `kubeboot-testkit`, O `system:masters`), which
//! the kubelet authenticates against `--client-ca-file`; and a blocking HTTPS GET.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The harness's client identity.
pub const CLIENT_USER: &str = "kubeboot-testkit";
pub const CLIENT_GROUP: &str = "system:masters";

struct Pki {
    issuer: CertifiedIssuer<'static, KeyPair>,
    client_cert: CertificateDer<'static>,
    client_key_der: Vec<u8>,
}

fn pki() -> Result<&'static Pki> {
    static PKI: OnceLock<Pki> = OnceLock::new();
    if let Some(p) = PKI.get() {
        return Ok(p);
    }
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "kubeboot-testkit-kubelet-ca");
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let client_key = KeyPair::generate()?;
    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, CLIENT_USER);
    client
        .distinguished_name
        .push(DnType::OrganizationName, CLIENT_GROUP);
    let client_cert = client.signed_by(&client_key, &issuer)?;
    let p = Pki {
        issuer,
        client_cert: client_cert.der().clone(),
        client_key_der: client_key.serialize_der(),
    };
    Ok(PKI.get_or_init(|| p))
}

/// Writes `ca.crt` (the client CA and the serving cert's issuer), `kubelet.crt` and
/// `kubelet.key` (for the node's name and IP) into `dir`.
pub fn write_kubelet_pki(dir: &Path, node_name: &str, node_ip: IpAddr) -> Result<()> {
    let p = pki()?;
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(vec![node_name.to_string(), node_ip.to_string()])?;
    let cert = params.signed_by(&key, &p.issuer)?;
    std::fs::write(dir.join("ca.crt"), p.issuer.pem())?;
    std::fs::write(dir.join("kubelet.crt"), cert.pem())?;
    std::fs::write(dir.join("kubelet.key"), key.serialize_pem())?;
    Ok(())
}

/// How the harness presents itself on 10250.
#[derive(Debug, Clone)]
pub enum Creds {
    /// The harness's client certificate.
    ClientCert,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// Nothing: an anonymous request.
    Anonymous,
}

fn client_config(creds: &Creds) -> Result<Arc<rustls::ClientConfig>> {
    let p = pki()?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.issuer.der().clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let cfg = match creds {
        Creds::ClientCert => {
            let key = PrivateKeyDer::try_from(p.client_key_der.clone()).map_err(|e| anyhow!(e))?;
            b.with_client_auth_cert(vec![p.client_cert.clone()], key)?
        }
        _ => b.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// `GET https://ip:port{path}`, verifying the kubelet's serving certificate against the
/// harness CA → (status code, body).
pub fn https_get(ip: IpAddr, port: u16, path: &str, creds: &Creds) -> Result<(u16, Vec<u8>)> {
    let conn = rustls::ClientConnection::new(client_config(creds)?, ServerName::from(ip))?;
    let tcp = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let auth = match creds {
        Creds::Bearer(t) => format!("Authorization: Bearer {t}\r\n"),
        _ => String::new(),
    };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {ip}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => {}
        // A peer that closes without close_notify still sent a whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    super::harness::parse_response(&buf).context("parsing the kubelet's answer")
}
