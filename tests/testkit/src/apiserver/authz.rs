//! Authorization as kube-apiserver does it with `--authorization-mode=Node,RBAC`: every
//! request is turned into attributes the way upstream's `RequestInfoFactory.NewRequestInfo`
//! does (`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`), then asked
//! of a union of authorizers, first to decide wins (`union.go`): the privileged group
//! `system:masters` (`authorizerfactory.NewPrivilegedGroups`, put in front of the chain
//! by `pkg/kubeapiserver/authorizer/config.go`), then each mode in flag order (`Node`:
//! `node_authz.rs`, `RBAC`: `rbac.rs`, `AlwaysAllow`). A request nobody allows is refused
//! with the `Status` of `responsewriters.ForbiddenStatusError` ([`forbidden`]).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Result, bail};

use super::rbac::Policy;
use super::status::ApiError;
use super::store::Store;
use super::tls::User;
use super::{node_authz, rbac};

/// `user.SystemPrivilegedGroup`.
pub const PRIVILEGED_GROUP: &str = "system:masters";
/// Added to every authenticated user (`group.AuthenticatedGroupAdder`).
pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ANONYMOUS: &str = "system:anonymous";

/// One `--authorization-mode` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Node,
    Rbac,
    AlwaysAllow,
    AlwaysDeny,
}

/// `--authorization-mode` (comma separated, as upstream's flag).
pub fn parse_modes(v: &str) -> Result<Vec<Mode>> {
    let mut out = Vec::new();
    for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        out.push(match m {
            "Node" => Mode::Node,
            "RBAC" => Mode::Rbac,
            "AlwaysAllow" => Mode::AlwaysAllow,
            "AlwaysDeny" => Mode::AlwaysDeny,
            other => bail!("--authorization-mode: unsupported mode {other:?}"),
        });
    }
    if out.is_empty() {
        bail!("--authorization-mode: at least one mode is required");
    }
    Ok(out)
}

/// `authorizer.Attributes` of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    pub resource_request: bool,
    /// Non-resource requests: the URL path.
    pub path: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The raw `fieldSelector` of a list or watch (the node authorizer reads it).
    pub field_selector: String,
}

#[cfg(test)]
impl Attributes {
    /// A resource request by `user` in `groups`, for the authorizers' unit tests.
    /// `target` is (verb, API group, resource, subresource, namespace, name).
    pub fn resource_request(user: &str, groups: &[&str], target: [&str; 6]) -> Attributes {
        let [verb, group, resource, sub, ns, name] = target;
        Attributes {
            user: user.into(),
            groups: groups.iter().map(|g| (*g).into()).collect(),
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }
    }
}

/// `authorizer.Decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

/// The request's attributes, as `NewRequestInfo` derives them from method, path and query.
pub fn request_attributes(user: &User, method: &str, path: &str, query: &str) -> Attributes {
    let mut a = Attributes {
        user: user.name.clone(),
        groups: user.groups.clone(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let http_verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    let rest = match parts.as_slice() {
        ["api", v, rest @ ..] => {
            a.api_version = v.to_string();
            rest
        }
        ["apis", g, v, rest @ ..] => {
            a.api_group = g.to_string();
            a.api_version = v.to_string();
            rest
        }
        _ => {
            a.verb = method.to_ascii_lowercase();
            return a;
        }
    };
    // Paths shorter than a resource (`/api/v1`, `/apis/apps/v1`) are non-resource requests.
    let Some(first) = rest.first().filter(|s| !s.is_empty()) else {
        a.verb = method.to_ascii_lowercase();
        a.api_group.clear();
        a.api_version.clear();
        return a;
    };
    a.resource_request = true;
    let mut rest = rest;
    if matches!(*first, "watch" | "proxy") {
        if rest.len() < 2 {
            // upstream: an error, the request is refused as unparseable; treat it as a
            // resource request for nothing, which no rule grants.
            a.verb = first.to_string();
            return a;
        }
        a.verb = first.to_string();
        rest = &rest[1..];
    } else {
        a.verb = http_verb.to_string();
    }
    if rest.first() == Some(&"namespaces")
        && let Some(ns) = rest.get(1)
    {
        a.namespace = ns.to_string();
        if rest
            .get(2)
            .is_some_and(|s| !matches!(*s, "status" | "finalize"))
        {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && a.verb != "proxy" {
        a.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        a.name = rest[1].to_string();
    }
    if let Some(r) = rest.first() {
        a.resource = r.to_string();
    }
    if a.name.is_empty() && a.verb == "get" {
        let q = super::rest::query(query);
        let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
        a.verb = if watching { "watch" } else { "list" }.to_string();
        if let Some(name) = exact_name(&q) {
            a.name = name;
        }
        a.field_selector = q.get("fieldSelector").cloned().unwrap_or_default();
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".to_string();
    }
    a
}

/// `fieldSelector=metadata.name=X` (`RequiresExactMatch`), when X is a valid path segment.
fn exact_name(q: &HashMap<String, String>) -> Option<String> {
    let sel = q.get("fieldSelector")?;
    sel.split(',').find_map(|term| {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, _)| !k.ends_with('!'))?;
        let valid = !v.is_empty() && v != "." && v != ".." && !v.contains(['/', '%']);
        (k.trim() == "metadata.name" && valid).then(|| v.trim().to_string())
    })
}

/// The configured chain.
pub struct Authorizer {
    pub modes: Vec<Mode>,
    pub policy: Arc<Policy>,
}

impl Authorizer {
    /// The union's decision and its reasons (joined with newlines, as `union.go` does).
    pub async fn authorize(&self, store: &Store, a: &Attributes) -> (Decision, String) {
        if a.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            return (Decision::Allow, String::new());
        }
        let mut reasons = Vec::new();
        for mode in &self.modes {
            let (d, why) = match mode {
                Mode::AlwaysAllow => (Decision::Allow, String::new()),
                Mode::AlwaysDeny => (Decision::Deny, "Everything is forbidden.".to_string()),
                Mode::Rbac => rbac::authorize(self.policy.snapshot(store).await.as_ref(), a),
                Mode::Node => node_authz::authorize(store, a).await,
            };
            if d != Decision::NoOpinion {
                return (d, why);
            }
            if !why.is_empty() {
                reasons.push(why);
            }
        }
        (Decision::NoOpinion, reasons.join("\n"))
    }
}

/// `forbiddenMessage`: who may not do what, where.
pub fn forbidden_message(a: &Attributes) -> String {
    let user = &a.user;
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let (verb, group) = (&a.verb, &a.api_group);
    if a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
        )
    } else {
        let ns = &a.namespace;
        format!(
            "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {ns:?}"
        )
    }
}

/// `ForbiddenStatusError` wrapped as `apierrors.NewForbidden` does: 403, reason
/// `Forbidden`, details `{group, kind: resource, name}` without empty fields.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let mut msg = forbidden_message(a);
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let qualified = match (a.resource.as_str(), a.api_group.as_str()) {
        ("", "") => String::new(),
        (r, "") => r.to_string(),
        (r, g) => format!("{r}.{g}"),
    };
    let message = match (qualified.is_empty(), a.name.is_empty()) {
        (true, _) => format!("forbidden: {msg}"),
        (false, true) => format!("{qualified} is forbidden: {msg}"),
        (false, false) => format!("{qualified} {:?} is forbidden: {msg}", a.name),
    };
    let mut details = serde_json::Map::new();
    for (k, v) in [
        ("name", &a.name),
        ("group", &a.api_group),
        ("kind", &a.resource),
    ] {
        if !v.is_empty() {
            details.insert(k.into(), v.clone().into());
        }
    }
    let mut e = ApiError::new(403, "Forbidden", message);
    e.details = Some(serde_json::Value::Object(details));
    e
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
