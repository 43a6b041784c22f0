//! A ready-to-use fake api-server for tests: a TLS etcd from the etcd harness, a PKI
//! like kubeadm's (cluster CA, serving cert for 127.0.0.1, an admin client cert in
//! `system:masters`, a service-account key pair, and for refusal tests a cert from an
//! unrelated CA and an expired serving cert), the server started in-process, a kubeconfig
//! for kubectl and kube-rs, and a bare HTTPS client for probing. `start` returns only once
//! `/readyz` answers 200, polled against a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::store::EtcdConfig;
use super::{ApiServer, Config};
use crate::etcd::{Etcd, EtcdOptions};

const READY_DEADLINE: Duration = Duration::from_secs(30);
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// PEM paths of the test PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    /// Signed by a CA the server does not trust.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    /// A serving cert for 127.0.0.1 from the cluster CA that expired in 2021.
    pub expired_server_cert: PathBuf,
    pub expired_server_key: PathBuf,
    /// The service-account signing key (PKCS#8 EC P-256) and its public key.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

/// The `--service-account-issuer` the harness passes.
pub const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// etcd + fake api-server + kubeconfig. Drop stops both.
pub struct Harness {
    pub server: ApiServer,
    pub etcd: Etcd,
    pub pki: Pki,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

fn new_ca(cn: &str) -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    Ok(CertifiedIssuer::self_signed(p, KeyPair::generate()?)?)
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    sans: &[&str],
    cn: &str,
    org: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String)> {
    leaf_with(issuer, sans, cn, org, usage, |_| {})
}

fn leaf_with(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    sans: &[&str],
    cn: &str,
    org: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
    edit: impl FnOnce(&mut CertificateParams),
) -> Result<(String, String)> {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    edit(&mut p);
    p.distinguished_name.push(DnType::CommonName, cn);
    if let Some(o) = org {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes the test PKI into `dir`.
pub fn write_pki(dir: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir)?;
    let ca = new_ca("kubernetes")?;
    let stranger = new_ca("somebody else")?;
    let server = leaf(
        &ca,
        &["127.0.0.1", "localhost"],
        "kube-apiserver",
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let admin = leaf(
        &ca,
        &[],
        "kubernetes-admin",
        Some("system:masters"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let other = leaf(
        &stranger,
        &[],
        "intruder",
        Some("system:masters"),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let expired = leaf_with(
        &ca,
        &["127.0.0.1", "localhost"],
        "kube-apiserver",
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
        |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        },
    )?;
    let sa = KeyPair::generate()?;
    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("apiserver.crt"),
        server_key: dir.join("apiserver.key"),
        admin_cert: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        stranger_cert: dir.join("stranger.crt"),
        stranger_key: dir.join("stranger.key"),
        expired_server_cert: dir.join("apiserver-expired.crt"),
        expired_server_key: dir.join("apiserver-expired.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
    };
    std::fs::write(&pki.ca_cert, ca.pem())?;
    for (path, pem) in [
        (&pki.server_cert, &server.0),
        (&pki.server_key, &server.1),
        (&pki.admin_cert, &admin.0),
        (&pki.admin_key, &admin.1),
        (&pki.stranger_cert, &other.0),
        (&pki.stranger_key, &other.1),
        (&pki.expired_server_cert, &expired.0),
        (&pki.expired_server_key, &expired.1),
        (&pki.sa_key, &sa.serialize_pem()),
        (&pki.sa_pub, &sa.public_key_pem()),
    ] {
        std::fs::write(path, pem)?;
    }
    Ok(pki)
}

/// A kubeconfig that reaches `url` as the admin.
pub fn write_kubeconfig(path: &Path, url: &str, pki: &Pki) -> Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n    certificate-authority: {}\nusers:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\ncurrent-context: fake\n",
        pki.ca_cert.display(),
        pki.admin_cert.display(),
        pki.admin_key.display()
    );
    std::fs::write(path, text)?;
    Ok(())
}

impl Harness {
    /// Starts a TLS etcd and the api-server on free loopback ports; ready on return.
    pub async fn start() -> Result<Harness> {
        Self::start_with(|_, _| Ok(())).await
    }

    /// Like `start`, letting `edit` change the flags first (it gets the temp dir to write
    /// files such as an encryption config into).
    pub async fn start_with(
        edit: impl FnOnce(&mut Config, &Path) -> Result<()>,
    ) -> Result<Harness> {
        let h = Self::start_unready_with(edit).await?;
        h.wait_ready().await?;
        Ok(h)
    }

    /// Like `start_with` but returns as soon as the server listens, without probing
    /// `/readyz` (for servers a normal client cannot reach, e.g. with an expired cert).
    pub async fn start_unready_with(
        edit: impl FnOnce(&mut Config, &Path) -> Result<()>,
    ) -> Result<Harness> {
        let etcd = tokio::task::spawn_blocking(|| {
            Etcd::start(EtcdOptions {
                tls: true,
                ..Default::default()
            })
        })
        .await??;
        let dir = tempfile::Builder::new()
            .prefix("kubeboot-apiserver-")
            .tempdir()?;
        let pki = write_pki(&dir.path().join("pki"))?;
        let etcd_tls = etcd.tls().context("etcd started without TLS")?;
        let mut config = Config {
            etcd: EtcdConfig {
                servers: vec![etcd.endpoint()],
                cafile: Some(etcd_tls.ca_cert.clone()),
                certfile: Some(etcd_tls.client_cert.clone()),
                keyfile: Some(etcd_tls.client_key.clone()),
            },
            secure_port: 0,
            bind_address: [127, 0, 0, 1].into(),
            tls_cert_file: Some(pki.server_cert.clone()),
            tls_private_key_file: Some(pki.server_key.clone()),
            client_ca_file: Some(pki.ca_cert.clone()),
            service_account_key_files: vec![pki.sa_pub.clone()],
            service_account_signing_key_file: Some(pki.sa_key.clone()),
            service_account_issuers: vec![SA_ISSUER.into()],
            ..Config::default()
        };
        edit(&mut config, dir.path())?;
        let server = ApiServer::start(config).await?;
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, &server.url(), &pki)?;
        Ok(Harness {
            server,
            etcd,
            pki,
            kubeconfig,
            dir,
        })
    }

    /// A kube-rs client as the admin, through the harness's kubeconfig.
    pub async fn kube_client(&self) -> Result<kube::Client> {
        // kube-rs may see more than one rustls provider in this build; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }

    async fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let last = match self.request("GET", "/readyz", None).await {
                Ok((200, _)) => return Ok(()),
                Ok((code, body)) => format!("{code} {body}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!("fake api-server not ready within {READY_DEADLINE:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request as the admin; returns status and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String)> {
        let id = Some((self.pki.admin_cert.as_path(), self.pki.admin_key.as_path()));
        https_request(
            &self.server.url(),
            &self.pki.ca_cert,
            id,
            method,
            path,
            body,
        )
        .await
    }
}

/// One HTTP/1.1 request over TLS (`Connection: close`), optionally with a client cert,
/// bounded by a deadline. Chunked bodies (watches) are returned undecoded.
pub async fn https_request(
    url: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    tokio::time::timeout(
        REQUEST_DEADLINE,
        request_once(url, ca, identity, "", method, path, body),
    )
    .await
    .with_context(|| format!("{method} {path}: no answer within {REQUEST_DEADLINE:?}"))?
}

/// Like `https_request` without a client cert, with `Authorization: Bearer TOKEN`.
pub async fn bearer_request(
    url: &str,
    ca: &Path,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let auth = format!("Authorization: Bearer {token}\r\n");
    tokio::time::timeout(
        REQUEST_DEADLINE,
        request_once(url, ca, None, &auth, method, path, body),
    )
    .await
    .with_context(|| format!("{method} {path}: no answer within {REQUEST_DEADLINE:?}"))?
}

async fn request_once(
    url: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    headers: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(
            CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?,
            PrivateKeyDer::from_pem_file(key)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    let hostport = url.strip_prefix("https://").context("https URL expected")?;
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport, |(h, _)| h)
        .to_string();
    let tcp = tokio::net::TcpStream::connect(hostport).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from(host.clone())?, tcp)
        .await?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body.as_bytes()).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status line")?;
    Ok((code, body.to_string()))
}
