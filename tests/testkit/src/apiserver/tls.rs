//! HTTPS and authentication as kube-apiserver does them: the serving certificate from
//! `--tls-cert-file`/`--tls-private-key-file` (or a generated self-signed one, like the
//! real server's `--cert-dir` fallback), client certificates verified against
//! `--client-ca-file` with the subject CN as user and O as groups, and static bearer
//! tokens from `--token-auth-file`. A client without credentials still completes the
//! handshake, because kubelets probe `/livez` and `/readyz` anonymously; the HTTP layer
//! then refuses everything else with 401. A certificate from another CA fails the
//! handshake, as it does against the real server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for the given flag values.
pub fn server_config(
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>> {
    let (certs, key) = match (cert_file, key_file) {
        (Some(c), Some(k)) => (
            CertificateDer::pem_file_iter(c)
                .with_context(|| format!("reading {}", c.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", c.display()))?,
            PrivateKeyDer::from_pem_file(k).with_context(|| format!("reading {}", k.display()))?,
        ),
        _ => self_signed()?,
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading {}", ca.display()))?
            {
                roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .allow_unauthenticated()
                .build()
                .context("client CA verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("serving certificate and key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn self_signed() -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(sans)?;
    let key = PrivateKeyDer::try_from(signing_key.serialize_der()).map_err(anyhow::Error::msg)?;
    Ok((vec![cert.der().clone()], key))
}

/// The user a verified client certificate names: CN is the user, each O a group.
pub fn user_from_cert(der: &CertificateDer<'_>) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(User { name, groups })
}

/// `--token-auth-file`: CSV lines `token,user,uid[,"group1,group2"]`.
pub fn load_tokens(path: &Path) -> Result<HashMap<String, User>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.splitn(4, ',');
        let (Some(token), Some(user)) = (parts.next(), parts.next()) else {
            anyhow::bail!("{}: malformed line {line:?}", path.display());
        };
        let groups = parts
            .nth(1)
            .map(|g| {
                g.trim_matches('"')
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            token.trim().to_string(),
            User {
                name: user.trim().to_string(),
                groups,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.csv");
        std::fs::write(&p, "abc,admin,1,\"system:masters,x\"\nxyz,bob,2\n").unwrap();
        let t = load_tokens(&p).unwrap();
        assert_eq!(t["abc"].groups, vec!["system:masters", "x"]);
        assert_eq!(t["xyz"].name, "bob");
    }

    #[test]
    fn a_self_signed_config_builds() {
        assert!(server_config(None, None, None).is_ok());
    }
}
