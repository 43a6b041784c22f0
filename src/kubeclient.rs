//! A kube-rs client from a kubeconfig file, bounded by timeouts. Shared by the
//! api-server source and `start`, so both report a bad kubeconfig the same way: the
//! file and what is wrong with it, or the endpoint and the real transport error.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::source::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("kubeconfig {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("api-server {endpoint}: {reason}")]
    Client { endpoint: String, reason: String },
}

/// A client for the current context of `kubeconfig`, and the endpoint it talks to.
pub async fn from_kubeconfig(
    kubeconfig: &Path,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<(kube::Client, String), ClientError> {
    let file_err = |reason: String| ClientError::Config {
        path: kubeconfig.display().to_string(),
        reason,
    };
    let parsed = Kubeconfig::read_from(kubeconfig).map_err(|e| file_err(error_chain(&e)))?;
    check_files(&parsed).map_err(file_err)?;
    let mut config = kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
        .await
        .map_err(|e| file_err(error_chain(&e)))?;
    let endpoint = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    skip_unused_trust_store(&mut config);
    config.connect_timeout = Some(connect_timeout);
    config.read_timeout = Some(request_timeout);
    config.write_timeout = Some(request_timeout);
    let client = kube::Client::try_from(config).map_err(|e| ClientError::Client {
        endpoint: endpoint.clone(),
        reason: error_chain(&e),
    })?;
    Ok((client, endpoint))
}

/// A config without credentials for `base` (scheme://host:port). For plain http it
/// carries an empty trust store: without a CA of its own kube-rs loads the system's, and
/// on a host that has none (no ca-certificates; a minbase Debian) building the client
/// fails, so a kubelet that answers would look down for ever.
pub fn anonymous_config(base: http::Uri) -> kube::Config {
    let mut config = kube::Config::new(base);
    skip_unused_trust_store(&mut config);
    config
}

/// Where no certificate will be verified (plain http, or a kubeconfig's
/// `insecure-skip-tls-verify`) and no CA is given, an empty trust store instead of the
/// system's, which kube-rs would otherwise load and fail on when there is none.
fn skip_unused_trust_store(config: &mut kube::Config) {
    let unverified = config.cluster_url.scheme_str() == Some("http") || config.accept_invalid_certs;
    if unverified && config.root_cert.is_none() {
        config.root_cert = Some(Vec::new());
    }
}

/// kube-rs reads the files a kubeconfig names only when the first connection is made,
/// and then reports a missing key like a transport failure. Checking them here makes a
/// broken kubeconfig a config error (exit 2) that names the file.
fn check_files(kc: &Kubeconfig) -> Result<(), String> {
    for (field, path) in referenced_files(kc) {
        if let Err(e) = std::fs::File::open(path) {
            return Err(format!("{field} {path}: {e}"));
        }
    }
    Ok(())
}

/// The files the current context of `kc` names (its cluster's CA, its user's client
/// certificate, key and token file), each with its kubeconfig field. Pure: no file is
/// opened, so the fuzz targets (`fuzz/`) can feed it any kubeconfig.
pub fn referenced_files(kc: &Kubeconfig) -> Vec<(&'static str, &str)> {
    let context = kc.current_context.as_deref().and_then(|name| {
        kc.contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
    });
    let Some(context) = context else {
        return Vec::new(); // kube-rs reports a missing context itself, with its name
    };
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref());
    let user = context.user.as_deref().and_then(|u| {
        kc.auth_infos
            .iter()
            .find(|a| a.name == u)
            .and_then(|a| a.auth_info.as_ref())
    });
    [
        (
            "certificate-authority",
            cluster.and_then(|c| c.certificate_authority.as_deref()),
        ),
        (
            "client-certificate",
            user.and_then(|u| u.client_certificate.as_deref()),
        ),
        ("client-key", user.and_then(|u| u.client_key.as_deref())),
        ("tokenFile", user.and_then(|u| u.token_file.as_deref())),
    ]
    .into_iter()
    .filter_map(|(field, path)| Some((field, path?)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, insecure: bool, ca: Option<Vec<Vec<u8>>>) -> kube::Config {
        let mut c = kube::Config::new(url.parse().unwrap());
        c.accept_invalid_certs = insecure;
        c.root_cert = ca;
        skip_unused_trust_store(&mut c);
        c
    }

    #[test]
    fn the_system_trust_store_is_loaded_only_where_a_certificate_is_verified() {
        assert_eq!(
            config("http://k:10255", false, None).root_cert,
            Some(vec![])
        );
        assert_eq!(config("https://k:6443", true, None).root_cert, Some(vec![]));
        // Verified https with no CA of its own: the system's, as kube-rs loads it.
        assert_eq!(config("https://k:6443", false, None).root_cert, None);
        // A CA the kubeconfig gives is never dropped.
        let ca = Some(vec![b"ca".to_vec()]);
        assert_eq!(config("https://k:6443", true, ca.clone()).root_cert, ca);
    }
}
