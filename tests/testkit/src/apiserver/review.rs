//! The review APIs kubelets and other delegating servers call to check a caller:
//! `authentication.k8s.io/v1 TokenReview` (upstream
//! `pkg/registry/authentication/tokenreview/storage.go`, `REST.Create`) and
//! `authorization.k8s.io/v1 SubjectAccessReview` (`pkg/registry/authorization/
//! subjectaccessreview/rest.go`, `REST.Create`, validated as
//! `ValidateSubjectAccessReviewSpec` does). Both are create-only and stored nowhere;
//! they answer with the same authenticators and the same authorizer chain the server
//! itself uses, so a kubelet's webhook sees what the api-server would decide.
//!
//! Simplified: TokenReview `spec.audiences` is checked against the server's own
//! audiences (not each token's), `status.user` carries no `uid` or `extra`.

use serde_json::{Value, json};

use super::authz::{Attributes, Decision};
use super::status::ApiError;
use super::{Reply, State};

pub const AUTHN_GROUP: &str = "authentication.k8s.io";
pub const AUTHZ_GROUP: &str = "authorization.k8s.io";

/// Whether a path belongs to the review groups (they are served here, not by `rest.rs`).
pub fn is_review_group(group: &str) -> bool {
    group == AUTHN_GROUP || group == AUTHZ_GROUP
}

/// The discovery `APIResourceList` of a review group.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let (name, kind) = match (group, version) {
        (AUTHN_GROUP, "v1") => ("tokenreviews", "TokenReview"),
        (AUTHZ_GROUP, "v1") => ("subjectaccessreviews", "SubjectAccessReview"),
        _ => return None,
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"),
        "resources": [{"name": name, "singularName": name.trim_end_matches('s').to_ascii_lowercase(),
            "namespaced": false, "kind": kind, "verbs": ["create"]}]}))
}

fn method_not_allowed(method: &str, path: &str) -> Reply {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!(
            "the server does not allow this method on the requested resource ({method} {path})"
        ),
    )
    .into()
}

fn not_found() -> Reply {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
    .into()
}

/// `/apis/<review group>/<version>/<rest...>`.
pub(super) async fn handle(
    state: &State,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &str,
    path: &str,
    body: &[u8],
) -> Reply {
    let plural = match (group, version, rest) {
        (AUTHN_GROUP, "v1", ["tokenreviews"]) => "tokenreviews",
        (AUTHZ_GROUP, "v1", ["subjectaccessreviews"]) => "subjectaccessreviews",
        _ => return not_found(),
    };
    if method != "POST" {
        return method_not_allowed(method, path);
    }
    let Ok(mut review) = serde_json::from_slice::<Value>(body) else {
        return ApiError::bad_request("the request body is not a JSON object").into();
    };
    if !review.is_object() {
        return ApiError::bad_request("the request body is not a JSON object").into();
    }
    let status = if plural == "tokenreviews" {
        token_review(state, &review["spec"]).await
    } else {
        subject_access_review(state, &review["spec"]).await
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    review["status"] = status;
    if review["metadata"].is_null() {
        review["metadata"] = json!({"creationTimestamp": null});
    }
    Reply::Json(201, review)
}

/// `TokenReview`: the user a bearer token authenticates as.
async fn token_review(state: &State, spec: &Value) -> Result<Value, ApiError> {
    let token = spec["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let wanted: Vec<&str> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let served = &state.audiences;
    let audiences: Vec<String> = if wanted.is_empty() {
        served.clone()
    } else {
        served
            .iter()
            .filter(|a| wanted.contains(&a.as_str()))
            .cloned()
            .collect()
    };
    let Some(user) = super::bearer(state, token).await else {
        return Ok(json!({"user": {}, "error": "invalid bearer token"}));
    };
    if !wanted.is_empty() && audiences.is_empty() {
        return Ok(json!({"user": {}, "error": "token audiences don't match"}));
    }
    let user = super::authenticated(user);
    Ok(json!({"authenticated": true,
        "user": {"username": user.name, "groups": user.groups},
        "audiences": audiences}))
}

fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_default().to_string()
}

/// `SubjectAccessReview`: what the authorizer decides for the described request.
async fn subject_access_review(state: &State, spec: &Value) -> Result<Value, ApiError> {
    let invalid = |f: &str, v: &Value, why: &str| {
        ApiError::invalid(format!(
            "SubjectAccessReview.{AUTHZ_GROUP} \"\" is invalid: spec.{f}: Invalid value: {v}: {why}"
        ))
    };
    let (res, non) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    if res.is_object() && non.is_object() {
        return Err(invalid(
            "nonResourceAttributes",
            non,
            "cannot be specified in combination with resourceAttributes",
        ));
    }
    if !res.is_object() && !non.is_object() {
        return Err(invalid(
            "resourceAttributes",
            &Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(String::from))
        .collect();
    let user = field(spec, "user");
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            "user",
            &json!(""),
            "at least one of user or group must be specified",
        ));
    }
    let mut a = Attributes {
        user,
        groups,
        ..Default::default()
    };
    if res.is_object() {
        a.resource_request = true;
        a.verb = field(res, "verb");
        a.namespace = field(res, "namespace");
        a.api_group = field(res, "group");
        a.api_version = field(res, "version");
        a.resource = field(res, "resource");
        a.subresource = field(res, "subresource");
        a.name = field(res, "name");
    } else {
        a.verb = field(non, "verb");
        a.path = field(non, "path");
    }
    let (decision, reason) = state.authz.authorize(&state.store, &a).await;
    let mut status = json!({"allowed": decision == Decision::Allow});
    if decision == Decision::Deny {
        status["denied"] = json!(true);
    }
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_create_only() {
        let l = resource_list(AUTHN_GROUP, "v1").unwrap();
        assert_eq!(l["resources"][0]["name"], "tokenreviews");
        assert_eq!(l["resources"][0]["verbs"], json!(["create"]));
        let l = resource_list(AUTHZ_GROUP, "v1").unwrap();
        assert_eq!(l["resources"][0]["kind"], "SubjectAccessReview");
        assert!(resource_list(AUTHZ_GROUP, "v1beta1").is_none());
        assert!(is_review_group(AUTHN_GROUP) && !is_review_group("apps"));
    }
}
