//! Service-account tokens as kube-apiserver issues and accepts them: the TokenRequest
//! subresource (`POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`,
//! authentication.k8s.io/v1) signs a bound JWT with `--service-account-signing-key-file`,
//! and a bearer JWT verified against `--service-account-key-file` authenticates as
//! `system:serviceaccount:NS:NAME` in `system:serviceaccounts`,
//! `system:serviceaccounts:NS` and `system:authenticated`. As in the real server a token
//! stops working when its service account or bound pod/secret/node is deleted or
//! replaced (uid check), a token may be bound to a Pod, Secret or Node (upstream's
//! `ServiceAccountTokenNodeBinding`, on by default since 1.31), and a pod-bound 3607 s
//! token is stretched to a year (`--service-account-extend-token-expiration`, on by
//! default). `--service-account-max-token-expiration` caps the lifetime granted, before
//! the stretch is considered, as upstream's `TokenREST.Create`
//! (pkg/registry/core/serviceaccount/storage/token.go) does: a capped 3607 s request is
//! no longer 3607 s and is not stretched. Not done: legacy secret-based tokens, the
//! `Warning` header that says a lifetime was shortened, the node claim of pod-bound
//! tokens, the check that a bound pod runs as the service account, `warnafter` audits.

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
/// The `expirationSeconds` the kubelet's projected tokens ask for, which upstream
/// stretches (`serviceaccount.WarnOnlyBoundTokenExpirationSeconds`).
const WARN_ONLY_EXPIRATION: i64 = 3607;
/// What it is stretched to: a year (`serviceaccount.ExpirationExtensionSeconds`; the
/// options' `MaxExtendedExpiration` keeps it with a local signing key).
const EXTENDED_EXPIRATION: i64 = 365 * 24 * 3600;
/// The bounds of `--service-account-max-token-expiration` when set
/// (pkg/controlplane/apiserver/options/options.go, `Complete`).
const MAX_EXPIRATION_BOUNDS: std::ops::RangeInclusive<u64> = 3600..=(1 << 32);

/// The service-account token configuration of one server.
#[derive(Default)]
pub struct ServiceAccounts {
    signer: Option<SigningKey>,
    keys: Vec<VerifyingKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    /// `--service-account-max-token-expiration` in seconds; 0: no cap.
    max_expiration: i64,
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
        // Upstream checks the bounds only where it signs tokens, as here.
        let max = c.service_account_max_token_expiration.as_secs();
        if signer.is_some() && max != 0 && !MAX_EXPIRATION_BOUNDS.contains(&max) {
            anyhow::bail!(
                "the service-account-max-token-expiration must be between 1 hour and 2^32 seconds"
            );
        }
        Ok(ServiceAccounts {
            signer,
            keys,
            issuers: c.service_account_issuers.clone(),
            audiences: c.audiences(),
            max_expiration: i64::try_from(max).unwrap_or(i64::MAX),
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
        // A Node-bound token (no pod claim) dies with its Node, as upstream's validator
        // (pkg/serviceaccount/claims.go, `Validate`) checks the node's name and uid.
        if k8s["pod"].is_null()
            && let Some(node) = k8s["node"]["name"].as_str()
        {
            node_still_exists(store, node, &k8s["node"]["uid"]).await?;
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

/// The etcd key of a bound object of `segment` (`nodes` are cluster-scoped).
fn object_key(store: &Store, kind: &str, ns: &str, name: &str) -> Option<String> {
    let namespace = (kind != "Node").then_some(ns);
    kubeboot::registry::key_for(&store.prefix, "v1", kind, namespace, name, None).ok()
}

/// Resolves `spec.boundObjectRef` the way upstream's `TokenREST.Create`
/// (pkg/registry/core/serviceaccount/storage/token.go) does: a core Pod, Secret or Node
/// must exist (else its 404), a given `uid` must be the stored one (else 409 Conflict on
/// the kind), and any other kind is a 400. Returns the JWT claim name and the stored uid.
async fn bound_object(store: &Store, ns: &str, r: &Value) -> ApiResult<(&'static str, Value)> {
    let api_version = r["apiVersion"].as_str().unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = r["kind"].as_str().unwrap_or("");
    let (claim, plural) = match (group, kind) {
        ("", "Pod") => ("pod", "pods"),
        ("", "Secret") => ("secret", "secrets"),
        ("", "Node") => ("node", "nodes"),
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    let bound = r["name"].as_str().unwrap_or("");
    let stored = match object_key(store, kind, ns, bound) {
        Some(key) => store.get(&key).await?,
        None => None,
    };
    let Some(stored) = stored else {
        return Err(ApiError::not_found("", plural, bound));
    };
    let uid = stored.object["metadata"]["uid"].clone();
    if let Some(want) = r["uid"].as_str().filter(|u| !u.is_empty())
        && Some(want) != uid.as_str()
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {kind} \"{bound}\": the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        )
        .with_details("", kind, bound));
    }
    Ok((claim, uid))
}

/// Whether the Node a token is bound to is still the one it was issued for.
async fn node_still_exists(store: &Store, name: &str, uid: &Value) -> Result<(), String> {
    let invalid = || "service account token has been invalidated".to_string();
    let key = object_key(store, "Node", "", name).ok_or_else(invalid)?;
    let found = store.get(&key).await.map_err(|e| e.message)?;
    let have = found.ok_or_else(invalid)?.object["metadata"]["uid"].clone();
    if have.as_str() != uid.as_str() {
        return Err(format!(
            "node UID ({}) does not match service account node ref claim ({})",
            have.as_str().unwrap_or(""),
            uid.as_str().unwrap_or("")
        ));
    }
    Ok(())
}

/// The lifetime granted for `requested` seconds under a cap of `max` (0: none), as
/// `TokenREST.Create` shortens it (it also warns; the double does not).
pub fn granted_seconds(requested: i64, max: i64) -> i64 {
    if max > 0 && requested > max {
        max
    } else {
        requested
    }
}

/// The JWT's lifetime and `warnafter` offset for a granted lifetime: only a pod-bound
/// token granted exactly 3607 s with the server's own audiences is stretched (to a year,
/// warning after the 3607 s), when `--service-account-extend-token-expiration` is on (the
/// double has it always on, as upstream's default).
pub fn jwt_lifetime(granted: i64, pod_bound: bool, kube_audiences: bool) -> (i64, Option<i64>) {
    if pod_bound && granted == WARN_ONLY_EXPIRATION && kube_audiences {
        (EXTENDED_EXPIRATION, Some(granted))
    } else {
        (granted, None)
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
    // Validated before the service account is looked up, as `ValidateTokenRequest` is.
    let mut spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    if !(MIN_EXPIRATION..=1 << 32).contains(&expiration) {
        return Err(ApiError::invalid(format!(
            "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: Invalid value: {expiration}: may not specify a duration less than 10 minutes or longer than 2^32 seconds"
        )));
    }
    let account = still_exists(store, "serviceaccounts", ns, name, &Value::Null)
        .await
        .map_err(|_| ApiError::not_found("", "serviceaccounts", name))?;
    let audiences = match spec["audiences"].as_array().filter(|a| !a.is_empty()) {
        Some(a) => a.clone(),
        None => sa.audiences.iter().map(|a| json!(a)).collect(),
    };
    spec["audiences"] = json!(audiences);
    let mut k8s = json!({"namespace": ns, "serviceaccount":
        {"name": name, "uid": account["metadata"]["uid"]}});
    let mut pod_bound = false;
    if let Some(r) = spec.get("boundObjectRef").filter(|r| r.is_object()) {
        let (claim, uid) = bound_object(store, ns, r).await?;
        pod_bound = claim == "pod";
        let bound = r["name"].as_str().unwrap_or("");
        k8s[claim] = json!({"name": bound, "uid": uid});
        spec["boundObjectRef"]["uid"] = uid;
        spec["boundObjectRef"]["apiVersion"] = json!("v1");
    }
    let now = jiff::Timestamp::now().as_second();
    // The cap comes first, and the answer's spec and status say what was granted.
    let expiration = granted_seconds(expiration, sa.max_expiration);
    spec["expirationSeconds"] = json!(expiration);
    // The transition stretch of `--service-account-extend-token-expiration` (on by
    // default upstream) on what was granted: the status still reports that, the JWT a
    // year. A Node- or Secret-bound token is never stretched.
    let kube_audiences = audiences.iter().all(|a| {
        a.as_str()
            .is_some_and(|a| sa.audiences.iter().any(|w| w == a))
    });
    let (life, warn_after) = jwt_lifetime(expiration, pod_bound, kube_audiences);
    let exp = now + life;
    if let Some(w) = warn_after {
        k8s["warnafter"] = json!(now + w);
    }
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
        "status": {"token": token, "expirationTimestamp": rfc3339(now + expiration)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_shortens_only_longer_requests_and_comes_before_the_stretch() {
        assert_eq!(granted_seconds(7200, 3600), 3600);
        assert_eq!(granted_seconds(1800, 3600), 1800);
        assert_eq!(granted_seconds(7200, 0), 7200, "no cap");
        // A kubelet's 3607 s pod-bound request under a 1 h cap is 3600 s: not stretched.
        let capped = granted_seconds(WARN_ONLY_EXPIRATION, 3600);
        assert_eq!(jwt_lifetime(capped, true, true), (3600, None));
        // Under a 2 h cap it is still 3607 s, and stretched to a year.
        let kept = granted_seconds(WARN_ONLY_EXPIRATION, 7200);
        assert_eq!(
            jwt_lifetime(kept, true, true),
            (EXTENDED_EXPIRATION, Some(WARN_ONLY_EXPIRATION))
        );
        // Never a Node-bound one, nor one for other audiences.
        assert_eq!(jwt_lifetime(kept, false, true), (kept, None));
        assert_eq!(jwt_lifetime(kept, true, false), (kept, None));
    }
}
