//! The API objects behind a pod's volumes, read through the api-server with the kubelet's
//! own kubeconfig: secrets, configMaps and service-account tokens from the TokenRequest API
//! (`POST /api/v1/namespaces/{ns}/serviceaccounts/{sa}/token`, bound to the pod). Tokens
//! are cached and requested again at 80 % of their life, like the kubelet's token manager.
//! Failures become [`Fetched::Failed`] with a message for the container's waiting state;
//! nothing here panics or gives up for good, the caller retries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, PostParams};

use super::projection::{Fetched, Objects, Ref};

/// The kubelet's api-server access, set once the kubeconfig is loaded.
pub struct ApiHandle {
    pub client: kube::Client,
}

/// The pod's service account (`default` when unset).
pub fn sa_name(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.service_account_name.clone())
        .or_else(|| spec.and_then(|s| s.service_account.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// A token and when to request a new one.
type Cached = (Vec<u8>, Instant);

/// Tokens by (audience, lifetime).
#[derive(Default)]
pub struct TokenCache(Mutex<BTreeMap<(String, i64), Cached>>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fetches every ref; never fails as a whole.
pub async fn fetch(
    api: Option<&ApiHandle>,
    pod: &Pod,
    refs: &BTreeSet<Ref>,
    tokens: &TokenCache,
) -> Objects {
    let mut out = Objects::new();
    for r in refs {
        let got = match api {
            None => Fetched::Failed("fake-kubelet has no --kubeconfig to read it with".into()),
            Some(api) => fetch_one(api, pod, r, tokens).await,
        };
        out.insert(r.clone(), got);
    }
    out
}

async fn fetch_one(api: &ApiHandle, pod: &Pod, r: &Ref, tokens: &TokenCache) -> Fetched {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let c = api.client.clone();
    match r {
        Ref::Secret(name) => match Api::<Secret>::namespaced(c, ns).get_opt(name).await {
            Ok(Some(s)) => {
                let mut d: BTreeMap<String, Vec<u8>> = s
                    .string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                d.extend(
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                Fetched::Data(d)
            }
            Ok(None) => Fetched::Missing,
            Err(e) => Fetched::Failed(e.to_string()),
        },
        Ref::ConfigMap(name) => match Api::<ConfigMap>::namespaced(c, ns).get_opt(name).await {
            Ok(Some(cm)) => {
                let mut d: BTreeMap<String, Vec<u8>> = cm
                    .binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                d.extend(
                    cm.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes())),
                );
                Fetched::Data(d)
            }
            Ok(None) => Fetched::Missing,
            Err(e) => Fetched::Failed(e.to_string()),
        },
        Ref::Token { audience, seconds } => {
            let key = (audience.clone(), *seconds);
            if let Some((t, refresh)) = lock(&tokens.0).get(&key)
                && Instant::now() < *refresh
            {
                return Fetched::Data(BTreeMap::from([("token".into(), t.clone())]));
            }
            match request_token(api, pod, audience, *seconds).await {
                Ok((t, life)) => {
                    let refresh = Instant::now() + life.mul_f64(0.8);
                    lock(&tokens.0).insert(key, (t.clone(), refresh));
                    Fetched::Data(BTreeMap::from([("token".into(), t)]))
                }
                Err(e) => Fetched::Failed(e),
            }
        }
    }
}

/// One TokenRequest bound to the pod; returns the token and its lifetime.
async fn request_token(
    api: &ApiHandle,
    pod: &Pod,
    audience: &str,
    seconds: i64,
) -> Result<(Vec<u8>, Duration), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = sa_name(pod);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: if audience.is_empty() {
                Vec::new()
            } else {
                vec![audience.to_string()]
            },
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let sas: Api<ServiceAccount> = Api::namespaced(api.client.clone(), ns);
    let resp = sas
        .create_token_request(&sa, &PostParams::default(), &req)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 404 => format!(
                "TokenRequest for serviceaccount {ns}/{sa} answered 404 (the api-server does not serve serviceaccounts/token yet, or the account is gone): {}",
                s.message
            ),
            e => format!("TokenRequest for serviceaccount {ns}/{sa}: {e}"),
        })?;
    let status = resp
        .status
        .ok_or("TokenRequest answered without a status")?;
    let left = status
        .expiration_timestamp
        .0
        .duration_since(jiff::Timestamp::now());
    let life = Duration::try_from(left)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(seconds.max(60) as u64));
    Ok((status.token.into_bytes(), life))
}
