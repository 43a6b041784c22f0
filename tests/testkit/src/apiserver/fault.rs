//! Fault injection for tests: `--testkit-fault METHOD:PATH_PREFIX=CODE[:COUNT]` (repeatable,
//! also [`super::Config::faults`] in-process) makes matching requests fail with `CODE` and a
//! proper `Status` body, `COUNT` times or forever. kube-apiserver has no such flag; it exists
//! so that tests can see how clients (kubeboot's api-server source, kubectl, kube-rs) handle
//! 401, 403, 500 and 503 answers without breaking a real server.
//!
//! `METHOD` is an HTTP method or `*`; `PATH_PREFIX` is matched against the request path
//! (without the query). A 403 names the user, verb and resource the way the RBAC authorizer
//! does, because clients print that message.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};

use super::status::ApiError;

/// One `--testkit-fault` rule.
#[derive(Debug)]
pub struct Fault {
    pub method: String,
    pub path_prefix: String,
    pub code: u16,
    /// How many more requests fail; `None` is forever.
    remaining: Option<AtomicU64>,
}

impl Clone for Fault {
    fn clone(&self) -> Self {
        Fault {
            method: self.method.clone(),
            path_prefix: self.path_prefix.clone(),
            code: self.code,
            remaining: self
                .remaining
                .as_ref()
                .map(|r| AtomicU64::new(r.load(Ordering::SeqCst))),
        }
    }
}

impl Fault {
    /// Parses `METHOD:PATH_PREFIX=CODE[:COUNT]`, e.g. `GET:/api/v1/namespaces/kube-system/secrets=403`.
    pub fn parse(spec: &str) -> Result<Fault> {
        let bad = || format!("--testkit-fault {spec:?}: want METHOD:PATH_PREFIX=CODE[:COUNT]");
        let (method, rest) = spec.split_once(':').with_context(bad)?;
        let (prefix, outcome) = rest.rsplit_once('=').with_context(bad)?;
        let (code, count) = match outcome.split_once(':') {
            Some((c, n)) => (c, Some(n.parse::<u64>().with_context(bad)?)),
            None => (outcome, None),
        };
        let code: u16 = code.parse().with_context(bad)?;
        if method.is_empty() || !prefix.starts_with('/') || !(400..=599).contains(&code) {
            bail!("{}", bad());
        }
        Ok(Fault {
            method: method.to_ascii_uppercase(),
            path_prefix: prefix.to_string(),
            code,
            remaining: count.map(AtomicU64::new),
        })
    }

    /// Whether this rule fires for the request (and uses up one of its count).
    fn fires(&self, method: &str, path: &str) -> bool {
        if (self.method != "*" && self.method != method) || !path.starts_with(&self.path_prefix) {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(n) => n
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok(),
        }
    }
}

/// The error of the first rule that fires, if any.
pub fn check(
    faults: &[Fault],
    method: &str,
    path: &str,
    query: &str,
    user: &str,
) -> Option<ApiError> {
    let f = faults.iter().find(|f| f.fires(method, path))?;
    Some(error(f.code, method, path, query, user))
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The `Status` the real server would send for `code` on this request.
fn error(code: u16, method: &str, path: &str, query: &str, user: &str) -> ApiError {
    let message = match code {
        401 => "Unauthorized".to_string(),
        403 => forbidden(method, path, query, user),
        429 => "Too many requests, please try again later.".into(),
        500 => format!("Internal error occurred: injected fault on {method} {path}"),
        503 => "the server is currently unable to handle the request".into(),
        504 => "Timeout: request did not complete within the allowed duration".into(),
        _ => format!("injected fault on {method} {path}"),
    };
    ApiError::new(code, reason(code), message)
}

/// `secrets is forbidden: User "x" cannot list resource "secrets" in API group "" in the
/// namespace "kube-system"`, as the RBAC authorizer words it.
fn forbidden(method: &str, path: &str, query: &str, user: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _, rest @ ..] => ("", rest),
        ["apis", g, _, rest @ ..] => (*g, rest),
        _ => {
            return format!(
                "forbidden: User \"{user}\" cannot {} path \"{path}\"",
                method.to_lowercase()
            );
        }
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() => (Some(*ns), r),
        r => (None, r),
    };
    let (resource, named) = match rest {
        [] => (String::new(), false),
        [r] => (r.to_string(), false),
        [r, _, sub, ..] => (format!("{r}/{sub}"), true),
        [r, ..] => (r.to_string(), true),
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, named, watch) {
        ("GET", _, true) => "watch",
        ("GET", true, _) => "get",
        ("GET", false, _) => "list",
        ("POST", ..) => "create",
        ("PUT", ..) => "update",
        ("PATCH", ..) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => "access",
    };
    scoped(&resource, group, ns, user, verb)
}

fn scoped(resource: &str, group: &str, ns: Option<&str>, user: &str, verb: &str) -> String {
    let plural = resource.split('/').next().unwrap_or(resource);
    let subject = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    let scope = match ns {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".into(),
    };
    format!(
        "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\"{scope}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_count_down() {
        let f = Fault::parse("get:/api/v1/namespaces/kube-system/secrets=403:2").unwrap();
        let faults = [f];
        let path = "/api/v1/namespaces/kube-system/secrets";
        let e = check(&faults, "GET", path, "limit=500", "admin").unwrap();
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "secrets is forbidden: User \"admin\" cannot list resource \"secrets\" in API group \"\" in the namespace \"kube-system\""
        );
        assert!(check(&faults, "POST", path, "", "admin").is_none());
        assert!(check(&faults, "GET", "/api/v1/pods", "", "admin").is_none());
        assert!(check(&faults, "GET", path, "", "admin").is_some());
        assert!(
            check(&faults, "GET", path, "", "admin").is_none(),
            "count used up"
        );
    }

    #[test]
    fn forever_and_any_method() {
        let faults = [Fault::parse("*:/apis=500").unwrap()];
        for _ in 0..5 {
            let e = check(&faults, "DELETE", "/apis/apps/v1", "", "u").unwrap();
            assert_eq!(e.reason, "InternalError");
        }
        let e = error(403, "GET", "/apis/apps/v1/deployments", "watch=true", "u");
        assert!(
            e.message.contains(
                "cannot watch resource \"deployments\" in API group \"apps\" at the cluster scope"
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for s in [
            "GET/api=500",
            "GET:api=500",
            "GET:/api=200",
            "GET:/api=5x",
            "GET:/api=500:x",
            ":/a=500",
        ] {
            assert!(Fault::parse(s).is_err(), "{s}");
        }
    }
}
