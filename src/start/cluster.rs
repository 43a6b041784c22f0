//! The api-server reads `start` makes while it waits: health endpoints, and one listing
//! of pods, nodes, node leases and ReplicaSets for [`super::observe`].

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use super::observe::World;
use crate::source::error_chain;

/// A failed read of the api-server, and whether it was refused for who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 401 or 403: the api-server is up and says no to these credentials, which no
    /// amount of waiting or recovering will change.
    pub denied: bool,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.message
    }
}

fn api_error(context: &str, e: &kube::Error) -> ApiError {
    ApiError {
        denied: matches!(e, kube::Error::Api(s) if s.code == 401 || s.code == 403),
        message: format!("{context}{}", error_chain(e)),
    }
}

/// `GET path` (`/readyz`, `/healthz`): `Ok(())` on 200, else the reason to print.
pub async fn health(client: &kube::Client, path: &str) -> Result<(), String> {
    Ok(health_checked(client, path).await?)
}

/// [`health`], telling a refusal (401/403) apart.
pub async fn health_checked(client: &kube::Client, path: &str) -> Result<(), ApiError> {
    let other = |message: String| ApiError {
        denied: false,
        message,
    };
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| other(e.to_string()))?;
    match client.request_text(req).await {
        Ok(body) if body.trim() == "ok" || body.trim().is_empty() => Ok(()),
        Ok(body) => Err(other(format!("{path} said {:?}", body.trim()))),
        Err(e) => Err(api_error(&format!("{path}: "), &e)),
    }
}

async fn list<K>(api: Api<K>) -> Result<Vec<K>, ApiError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug + kube::Resource<DynamicType = ()>,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| api_error(&format!("list {}: ", K::plural(&())), &e))
}

/// Pods and ReplicaSets in `namespaces`, all nodes, and the node leases.
pub async fn world(client: &kube::Client, namespaces: &[String]) -> Result<World, String> {
    Ok(world_checked(client, namespaces).await?)
}

/// [`world`], telling a refusal (401/403) apart.
pub async fn world_checked(
    client: &kube::Client,
    namespaces: &[String],
) -> Result<World, ApiError> {
    let mut w = World {
        nodes: list(Api::<Node>::all(client.clone())).await?,
        leases: list(Api::<Lease>::namespaced(client.clone(), "kube-node-lease")).await?,
        ..World::default()
    };
    for ns in namespaces {
        w.pods
            .extend(list(Api::<Pod>::namespaced(client.clone(), ns)).await?);
        w.replicasets
            .extend(list(Api::<ReplicaSet>::namespaced(client.clone(), ns)).await?);
    }
    Ok(w)
}
