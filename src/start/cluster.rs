//! The api-server reads `start` makes while it waits: health endpoints, and one listing
//! of pods, nodes, node leases and ReplicaSets for [`super::observe`].

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use super::observe::World;
use crate::source::error_chain;

/// `GET path` (`/readyz`, `/healthz`): `Ok(())` on 200, else the reason to print.
pub async fn health(client: &kube::Client, path: &str) -> Result<(), String> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match client.request_text(req).await {
        Ok(body) if body.trim() == "ok" || body.trim().is_empty() => Ok(()),
        Ok(body) => Err(format!("{path} said {:?}", body.trim())),
        Err(e) => Err(format!("{path}: {}", error_chain(&e))),
    }
}

async fn list<K>(api: Api<K>) -> Result<Vec<K>, String>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| error_chain(&e))
}

/// Pods and ReplicaSets in `namespaces`, all nodes, and the node leases.
pub async fn world(client: &kube::Client, namespaces: &[String]) -> Result<World, String> {
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
