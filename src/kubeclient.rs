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
