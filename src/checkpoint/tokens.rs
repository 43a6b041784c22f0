//! The service-account tokens a checkpoint's projected volumes hold: what is asked of
//! TokenRequest and when it is asked again. Pure; `materialize` does the I/O.
//!
//! Why bound to the Node (issue 12, finding 4): a checkpoint's token sits on the host
//! disk, outside any pod, and outlives its parent, so it cannot be bound to the parent
//! pod (the pod is what is gone) — but an unbound token is valid wherever it is copied
//! to. Bound to this node's Node object (`boundObjectRef` kind `Node`, the binding the
//! kubelet's own credentials use, `ServiceAccountTokenNodeBinding`) it dies when the
//! Node is deleted or replaced, and it carries the node in its `kubernetes.io.node`
//! claim for audit. The uid is left for the api-server to fill in: upstream's
//! `TokenREST.Create` binds to the uid on record, and the checkpointer's role does not
//! read Node objects.
//!
//! Why short-lived: the lifetime asked is the projection's own `expirationSeconds`
//! (default 3600 s, the API's default; the kube-api-access volume asks 3607 s), never a
//! year. A Node-bound token is never stretched by `--service-account-extend-token-expiration`
//! (upstream stretches only pod-bound ones), and `--service-account-max-token-expiration`
//! may shorten it, so renewal follows what was granted, not what was asked.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec, TokenRequestStatus,
};

/// A projection's `expirationSeconds` when it has none (the API's default).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;
/// The longest a token is used before renewal whatever its lifetime, as the kubelet's
/// token manager (`maxTTL`, 24 h).
const MAX_TTL: SignedDuration = SignedDuration::from_hours(24);

/// The TokenRequest for one projection: `audience` (none: the api-server's), the
/// projection's `expiration_seconds`, bound to the Node named `node`.
#[must_use]
pub fn request(
    node: &str,
    audience: Option<&str>,
    expiration_seconds: Option<i64>,
) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.iter().map(|a| (*a).to_string()).collect(),
            expiration_seconds: Some(expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                uid: None,
            }),
        },
        ..Default::default()
    }
}

/// When a granted token must be renewed: once 80 % of the lifetime actually granted has
/// passed (20 % before `status.expirationTimestamp`), or after 24 h — the kubelet's rule
/// (pkg/kubelet/token/token_manager.go, `requiresRefresh`). The lifetime is the
/// answer's `spec.expirationSeconds` (what the server granted, after any cap), else the
/// time left from `now`.
#[must_use]
pub fn renew_at(granted: &TokenRequest, status: &TokenRequestStatus, now: Timestamp) -> Timestamp {
    let expires = status.expiration_timestamp.0;
    let left = expires.duration_since(now);
    let life = granted
        .spec
        .expiration_seconds
        .map(SignedDuration::from_secs)
        .filter(|l| !l.is_negative() && *l <= left + SignedDuration::from_secs(60))
        .unwrap_or(left);
    let margin = life / 5;
    let by_expiry = expires.checked_sub(margin).unwrap_or(now);
    let issued = expires.checked_sub(life).unwrap_or(now);
    let by_age = issued.checked_add(MAX_TTL).unwrap_or(by_expiry);
    by_expiry.min(by_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn granted(seconds: Option<i64>, expires: Timestamp) -> (TokenRequest, TokenRequestStatus) {
        let mut r = request("m1", None, seconds);
        r.spec.expiration_seconds = seconds;
        let s = TokenRequestStatus {
            token: String::new(),
            expiration_timestamp: Time(expires),
        };
        (r, s)
    }

    #[test]
    fn the_request_is_node_bound_and_asks_the_projections_lifetime() {
        let r = request("master-1", Some("vault"), Some(3607));
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(
            body["spec"],
            serde_json::json!({
                "audiences": ["vault"],
                "expirationSeconds": 3607,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": "master-1"},
            })
        );
        let r = request("master-1", None, None);
        assert_eq!(r.spec.expiration_seconds, Some(DEFAULT_TOKEN_SECONDS));
        assert!(
            r.spec.audiences.is_empty(),
            "the api-server's own audiences"
        );
    }

    #[test]
    fn renewal_is_at_80_percent_of_the_granted_lifetime() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let secs = |s: i64| now + SignedDuration::from_secs(s);
        // Granted what was asked: renewed at 80 %.
        let (r, s) = granted(Some(3600), secs(3600));
        assert_eq!(renew_at(&r, &s, now), secs(2880));
        // Granted 20 min: 80 % of that. (What a cap granted is in the answer's spec;
        // tests/testkit/tests/apiserver_token_cap.rs renews a 2 h request capped to 1 h
        // by the fake api-server after 48 min.)
        let (r, s) = granted(Some(1200), secs(1200));
        assert_eq!(renew_at(&r, &s, now), secs(960));
        // No lifetime in the answer: 80 % of the time left.
        let (r, s) = granted(None, secs(1000));
        assert_eq!(renew_at(&r, &s, now), secs(800));
        // A spec lifetime longer than the time left (not what was granted): time left.
        let (r, s) = granted(Some(365 * 24 * 3600), secs(600));
        assert_eq!(renew_at(&r, &s, now), secs(480));
        // A long lifetime is renewed after 24 h at most.
        let (r, s) = granted(Some(7 * 24 * 3600), secs(7 * 24 * 3600));
        assert_eq!(renew_at(&r, &s, now), secs(24 * 3600));
        // Already expired: due now or in the past, never later.
        let (r, s) = granted(Some(600), secs(-10));
        assert!(renew_at(&r, &s, now) <= now);
    }
}
