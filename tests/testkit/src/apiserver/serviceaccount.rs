//! Service-account tokens as kube-apiserver issues and accepts them: the TokenRequest
//! subresource (`POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`,
//! authentication.k8s.io/v1) signs a bound JWT with `--service-account-signing-key-file`,
//! and a bearer JWT verified against `--service-account-key-file` authenticates as
//! `system:serviceaccount:NS:NAME` in `system:serviceaccounts`,
//! `system:serviceaccounts:NS` and `system:authenticated`. As in the real server a token
//! stops working when its service account or bound pod/secret is deleted or replaced (uid
//! check). Not done: legacy secret-based tokens, `--service-account-max-token-expiration`,
//! the node claim of pod-bound tokens, `warnafter`.

use serde_json::{Value, json};

use super::Reply;
use super::config::Config;
use super::jwt::{self, SigningKey, VerifyingKey};
use super::status::{ApiError, ApiResult};
use super::store::Store;
use super::tls::User;

/// Default and minimum `spec.expirationSeconds`.
const DEFAULT_EXPIRATION: i64 = 3600;
const MIN_EXPIRATION: i64 = 600;

/// The service-account token configuration of one server.
#[derive(Default)]
pub struct ServiceAccounts {
    signer: Option<SigningKey>,
    keys: Vec<VerifyingKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl ServiceAccounts {
    pub fn from_config(c: &Config) -> anyhow::Result<ServiceAccounts> {
        let signer = match &c.service_account_signing_key_file {
            Some(p) => Some(
                SigningKey::from_file(p)
                    .map_err(|e| anyhow::anyhow!("--service-account-signing-key-file: {e}"))?,
            ),
            None => None,
        };
        let mut keys = Vec::new();
        for p in &c.service_account_key_files {
            keys.extend(
                VerifyingKey::from_file(p)
                    .map_err(|e| anyhow::anyhow!("--service-account-key-file: {e}"))?,
            );
        }
        if signer.is_some() && c.service_account_issuers.is_empty() {
            anyhow::bail!(
                "--service-account-issuer is required with --service-account-signing-key-file"
            );
        }
        Ok(ServiceAccounts {
            signer,
            keys,
            issuers: c.service_account_issuers.clone(),
            audiences: c.audiences(),
        })
    }

    /// The user a bearer JWT names, or why it is refused.
    pub async fn authenticate(&self, store: &Store, token: &str) -> Result<User, String> {
        let now = jiff::Timestamp::now().as_second();
        let claims = jwt::verify(token, &self.keys, now).map_err(|e| e.to_string())?;
        let iss = claims["iss"].as_str().unwrap_or("");
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(format!("unknown issuer {iss:?}"));
        }
        let aud: Vec<&str> = match &claims["aud"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !aud.iter().any(|a| self.audiences.iter().any(|w| w == a)) {
            return Err(format!(
                "token audiences {aud:?} are not {:?}",
                self.audiences
            ));
        }
        let sub = claims["sub"].as_str().unwrap_or("");
        let Some((ns, name)) = sub
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        else {
            return Err(format!("subject {sub:?} is not a service account"));
        };
        let k8s = &claims["kubernetes.io"];
        if k8s["namespace"].as_str() != Some(ns) {
            return Err("kubernetes.io claim does not match the subject".into());
        }
        still_exists(
            store,
            "serviceaccounts",
            ns,
            name,
            &k8s["serviceaccount"]["uid"],
        )
        .await?;
        for (kind, segment) in [("pod", "pods"), ("secret", "secrets")] {
            if let Some(bound) = k8s[kind]["name"].as_str() {
                still_exists(store, segment, ns, bound, &k8s[kind]["uid"]).await?;
            }
        }
        Ok(User {
            name: sub.to_string(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        })
    }
}

/// The stored object, or why the token naming it (with `uid`) is no longer valid.
async fn still_exists(
    store: &Store,
    segment: &str,
    ns: &str,
    name: &str,
    uid: &Value,
) -> Result<Value, String> {
    let key = format!("{}/{segment}/{ns}/{name}", store.prefix);
    let found = store.get(&key).await.map_err(|e| e.message)?;
    let Some(s) = found else {
        return Err(format!("{segment} {ns}/{name} has been deleted"));
    };
    let have = s.object["metadata"]["uid"].as_str();
    match uid.as_str() {
        Some(want) if Some(want) != have => Err(format!("{segment} {ns}/{name} has been replaced")),
        _ => Ok(s.object),
    }
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `POST .../serviceaccounts/NAME/token`.
pub async fn token_request(
    sa: &ServiceAccounts,
    store: &Store,
    ns: &str,
    name: &str,
    body: &[u8],
) -> Reply {
    match issue(sa, store, ns, name, body).await {
        Ok(v) => Reply::Json(201, v),
        Err(e) => e.into(),
    }
}

async fn issue(
    sa: &ServiceAccounts,
    store: &Store,
    ns: &str,
    name: &str,
    body: &[u8],
) -> ApiResult<Value> {
    let Some(signer) = &sa.signer else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let req: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if body.starts_with(b"k8s\0") {
        // `kubectl create token` sends protobuf, which the codec reads.
        kubeboot::codec::decode("TokenRequest", body)
            .map_err(|e| {
                ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
            })?
            .object
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })?
    };
    let account = still_exists(store, "serviceaccounts", ns, name, &Value::Null)
        .await
        .map_err(|_| ApiError::not_found("", "serviceaccounts", name))?;
    let mut spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    if !(MIN_EXPIRATION..=1 << 32).contains(&expiration) {
        return Err(ApiError::invalid(format!(
            "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {expiration}: may not specify a duration less than 10 minutes or longer than 2^32 seconds"
        )));
    }
    spec["expirationSeconds"] = json!(expiration);
    let audiences = match spec["audiences"].as_array().filter(|a| !a.is_empty()) {
        Some(a) => a.clone(),
        None => sa.audiences.iter().map(|a| json!(a)).collect(),
    };
    spec["audiences"] = json!(audiences);
    let mut k8s = json!({"namespace": ns, "serviceaccount":
        {"name": name, "uid": account["metadata"]["uid"]}});
    if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
        let (segment, claim) = match r["kind"].as_str() {
            Some("Pod") => ("pods", "pod"),
            Some("Secret") => ("secrets", "secret"),
            other => {
                return Err(ApiError::invalid(format!(
                    "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.boundObjectRef.kind: Unsupported value: {:?}: supported values: \"Pod\", \"Secret\"",
                    other.unwrap_or("")
                )));
            }
        };
        let bound = r["name"].as_str().unwrap_or("");
        let obj = still_exists(store, segment, ns, bound, &Value::Null)
            .await
            .map_err(|_| ApiError::not_found("", segment, bound))?;
        let uid = obj["metadata"]["uid"].clone();
        if r["uid"].as_str().is_some_and(|u| Some(u) != uid.as_str()) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
                    r["uid"].as_str().unwrap_or("")
                ),
            ));
        }
        k8s[claim] = json!({"name": bound, "uid": uid});
        spec["boundObjectRef"]["uid"] = uid;
        spec["boundObjectRef"]["apiVersion"] = json!("v1");
    }
    let now = jiff::Timestamp::now().as_second();
    let exp = now + expiration;
    let issuer = sa.issuers.first().cloned().unwrap_or_default();
    let claims = json!({
        "aud": audiences, "exp": exp, "iat": now, "iss": issuer,
        "jti": super::defaults::random_uid(), "kubernetes.io": k8s, "nbf": now,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
    });
    let token = signer
        .sign(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json!({
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
    }))
}
