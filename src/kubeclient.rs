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
    config.connect_timeout = Some(connect_timeout);
    config.read_timeout = Some(request_timeout);
    config.write_timeout = Some(request_timeout);
    let client = kube::Client::try_from(config).map_err(|e| ClientError::Client {
        endpoint: endpoint.clone(),
        reason: error_chain(&e),
    })?;
    Ok((client, endpoint))
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
