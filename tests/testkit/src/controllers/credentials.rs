//! `--use-service-account-credentials`: as kube-controller-manager does (upstream
//! `staging/src/k8s.io/controller-manager/pkg/clientbuilder/client_builder_dynamic.go`,
//! `DynamicControllerClientBuilder`), each controller writes as its own service account
//! `kube-system/<controller>`: the account is created if missing, a token is requested
//! for it (TokenRequest, one hour) with the manager's own credentials, and requests then
//! carry that token, so the api-server authorizes them against the controller's
//! `system:controller:<controller>` role. Reads (the listing every cycle) stay on the
//! manager's own identity, whose `system:kube-controller-manager` role may list and
//! watch everything, as the real manager's shared informers do.
//!
//! Without the flag every controller uses the manager's own client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use kube::{Client, Config};
use tokio::sync::Mutex;

use super::world::Action;

const NAMESPACE: &str = "kube-system";
const TOKEN_SECONDS: i64 = 3600;
/// A token is replaced once this much of its lifetime has passed.
const REFRESH_AFTER: Duration = Duration::from_secs(TOKEN_SECONDS as u64 * 4 / 5);

/// The controller (upstream's service-account name) whose role grants an action.
pub fn controller_of(a: &Action) -> &'static str {
    match a {
        Action::CreatePod(p) => match owner_kind(&p.metadata) {
            Some("DaemonSet") => "daemon-set-controller",
            _ => "replicaset-controller",
        },
        Action::DeletePod { why, .. } => match *why {
            "its node is gone" => "pod-garbage-collector",
            "NoExecute taint: taint eviction" => "taint-eviction-controller",
            "owner gone" => "generic-garbage-collector",
            "surplus" => "replicaset-controller",
            _ => "daemon-set-controller",
        },
        Action::CreateReplicaSet(_) | Action::ScaleReplicaSet { .. } => "deployment-controller",
        Action::DeleteReplicaSet { .. } => "generic-garbage-collector",
        Action::NodeStatus(_) | Action::NodeTaints { .. } | Action::PodStatus(_) => {
            "node-controller"
        }
        Action::Status { owner, .. } => match owner {
            super::world::Owner::DaemonSet => "daemon-set-controller",
            super::world::Owner::Deployment => "deployment-controller",
            super::world::Owner::ReplicaSet => "replicaset-controller",
        },
    }
}

fn owner_kind(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<&str> {
    m.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.as_str())
}

/// Clients per controller.
pub struct Credentials {
    manager: Client,
    /// The manager's config without its credentials (server, CA, timeouts), when
    /// per-controller credentials are on.
    base: Option<Config>,
    cache: Mutex<HashMap<&'static str, (Client, Instant)>>,
}

impl Credentials {
    pub fn new(manager: Client, base: Option<Config>) -> Credentials {
        Credentials {
            manager,
            base,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client `controller` writes with.
    pub async fn client(&self, controller: &'static str) -> Result<Client> {
        let Some(base) = &self.base else {
            return Ok(self.manager.clone());
        };
        let mut cache = self.cache.lock().await;
        if let Some((c, at)) = cache.get(controller)
            && at.elapsed() < REFRESH_AFTER
        {
            return Ok(c.clone());
        }
        let token = self.token(controller).await?;
        let mut config = base.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        let client = Client::try_from(config)?;
        cache.insert(controller, (client.clone(), Instant::now()));
        Ok(client)
    }

    /// Forgets a controller's client (after the api-server refused its token).
    pub async fn forget(&self, controller: &'static str) {
        self.cache.lock().await.remove(controller);
    }

    /// `getOrCreateServiceAccount` then a TokenRequest for it.
    async fn token(&self, name: &str) -> Result<String> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.manager.clone(), NAMESPACE);
        if sas.get_opt(name).await?.is_none() {
            let sa = ServiceAccount {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match sas.create(&PostParams::default(), &sa).await {
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                r => {
                    r.with_context(|| format!("creating service account {NAMESPACE}/{name}"))?;
                }
            }
        }
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..Default::default()
            },
            ..Default::default()
        };
        let made = sas
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .with_context(|| format!("requesting a token for {NAMESPACE}/{name}"))?;
        made.status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .with_context(|| format!("an empty token for {NAMESPACE}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn pod_of(kind: &str) -> Action {
        let mut p = Pod::default();
        p.metadata.owner_references = Some(vec![OwnerReference {
            kind: kind.into(),
            controller: Some(true),
            ..Default::default()
        }]);
        Action::CreatePod(Box::new(p))
    }

    #[test]
    fn each_write_is_made_by_the_controller_whose_role_grants_it() {
        assert_eq!(controller_of(&pod_of("DaemonSet")), "daemon-set-controller");
        assert_eq!(
            controller_of(&pod_of("ReplicaSet")),
            "replicaset-controller"
        );
        let delete = |why| Action::DeletePod {
            namespace: "a".into(),
            name: "p".into(),
            uid: "u".into(),
            why,
        };
        assert_eq!(
            controller_of(&delete("its node is gone")),
            "pod-garbage-collector"
        );
        assert_eq!(
            controller_of(&delete("owner gone")),
            "generic-garbage-collector"
        );
        assert_eq!(controller_of(&delete("surplus")), "replicaset-controller");
        assert_eq!(
            controller_of(&delete("stale template")),
            "daemon-set-controller"
        );
        let status = Action::Status {
            owner: super::super::world::Owner::Deployment,
            namespace: "a".into(),
            name: "d".into(),
            status: serde_json::json!({}),
        };
        assert_eq!(controller_of(&status), "deployment-controller");
    }
}
