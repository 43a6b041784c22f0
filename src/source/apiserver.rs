//! The api-server source: bootkube's "an api-server is still running" case. It lists
//! the same four kube-system resources through kube-rs, with the kubeconfig's TLS and
//! credentials, bounded by timeouts, and yields the same `ControlPlane` as the etcd
//! sources — the objects are the ones the api-server decoded from the same etcd.
//!
//! Lists are paged; every page after the first uses the first page's continue token,
//! which the api-server pins to one etcd revision, so the recovery sees one state.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use super::{NAMESPACE, SourceError};
use crate::kubeclient::{self, ClientError};
use crate::model::{ControlPlane, SourceInfo, SourceKind};

/// Objects per list page.
const PAGE: u32 = 500;

/// How to reach the api-server.
#[derive(Debug, Clone)]
pub struct ApiserverConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ApiserverConfig {
    fn default() -> Self {
        ApiserverConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Reads the control plane through the api-server named in `kubeconfig`.
pub async fn read(
    kubeconfig: &Path,
    cfg: &ApiserverConfig,
    kubeconfig_bytes: Option<Vec<u8>>,
) -> Result<ControlPlane, SourceError> {
    let (client, endpoint) =
        kubeclient::from_kubeconfig(kubeconfig, cfg.connect_timeout, cfg.request_timeout)
            .await
            .map_err(|e| match e {
                ClientError::Config { path, reason } => SourceError::Config { path, reason },
                ClientError::Client { endpoint, reason } => {
                    SourceError::Apiserver { endpoint, reason }
                }
            })?;
    let reader = Reader {
        client,
        endpoint: endpoint.clone(),
        timeout: cfg.request_timeout,
    };
    let (config_maps, revision) = reader.list::<ConfigMap>("configmaps").await?;
    let (secrets, _) = reader.list::<Secret>("secrets").await?;
    let (daemonsets, _) = reader.list::<DaemonSet>("daemonsets").await?;
    let (deployments, _) = reader.list::<Deployment>("deployments").await?;
    let mut cp = ControlPlane {
        source: SourceInfo {
            kind: SourceKind::Apiserver,
            location: endpoint.trim_end_matches('/').to_string(),
            revision,
            integrity: None,
            sha256: None,
            size: None,
            read_at: super::now_rfc3339(),
        },
        daemonsets,
        deployments,
        secrets,
        config_maps,
        kubeconfig: kubeconfig_bytes,
        warnings: Vec::new(),
        unknown_fields: Vec::new(),
    };
    cp.sort();
    Ok(cp)
}

struct Reader {
    client: kube::Client,
    endpoint: String,
    timeout: Duration,
}

impl Reader {
    /// All objects of one resource in kube-system, and the list's resourceVersion.
    async fn list<K>(&self, resource: &str) -> Result<(Vec<K>, Option<i64>), SourceError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), NAMESPACE);
        let mut items = Vec::new();
        let mut revision = None;
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(PAGE);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = match tokio::time::timeout(self.timeout, api.list(&params)).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => return Err(self.error(resource, &e)),
                Err(_) => {
                    return Err(SourceError::Apiserver {
                        endpoint: self.endpoint.clone(),
                        reason: format!("listing {resource}: no answer within {:?}", self.timeout),
                    });
                }
            };
            if revision.is_none() {
                revision = page
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|rv| rv.parse().ok());
            }
            items.extend(page.items);
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        Ok((items, revision))
    }

    fn error(&self, resource: &str, e: &kube::Error) -> SourceError {
        let reason = match e {
            kube::Error::Api(status) => format!(
                "listing {resource} in {NAMESPACE}: HTTP {} {}: {}",
                status.code, status.reason, status.message
            ),
            other => {
                let chain = one_line(other);
                // These alerts come from the server about our certificate, which the
                // rustls text ("received fatal alert: UnknownCA") does not say.
                let refused = [
                    "UnknownCA",
                    "BadCertificate",
                    "CertificateRequired",
                    "CertificateExpired",
                ]
                .iter()
                .any(|a| chain.contains(&format!("fatal alert: {a}")));
                let hint = if refused {
                    " (the api-server refused the kubeconfig's client certificate)"
                } else {
                    ""
                };
                format!("listing {resource} in {NAMESPACE}: {chain}{hint}")
            }
        };
        SourceError::Apiserver {
            endpoint: self.endpoint.clone(),
            reason,
        }
    }
}

/// An error and its causes on one line: TLS and auth causes must never be hidden.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    super::error_chain(e)
}
