use super::*;

fn user(name: &str, groups: &[&str]) -> User {
    User {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn attrs(method: &str, path: &str, query: &str) -> Attributes {
    request_attributes(&user("u", &[]), method, path, query)
}

#[test]
fn verbs_follow_the_request_info_factory() {
    let a = attrs("GET", "/api/v1/namespaces/kube-system/pods", "");
    assert_eq!((a.verb.as_str(), a.resource.as_str()), ("list", "pods"));
    assert_eq!(a.namespace, "kube-system");
    assert!(a.resource_request);
    let a = attrs("GET", "/api/v1/pods", "watch=true");
    assert_eq!(a.verb, "watch");
    let a = attrs("GET", "/api/v1/watch/namespaces/a/pods", "");
    assert_eq!((a.verb.as_str(), a.namespace.as_str()), ("watch", "a"));
    let a = attrs(
        "GET",
        "/api/v1/namespaces/a/secrets",
        "fieldSelector=metadata.name%3Ds1",
    );
    assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "s1"));
    let a = attrs("PUT", "/api/v1/namespaces/a/pods/p/status", "");
    assert_eq!(
        (a.verb.as_str(), a.name.as_str(), a.subresource.as_str()),
        ("update", "p", "status")
    );
    let a = attrs("DELETE", "/apis/apps/v1/namespaces/a/deployments", "");
    assert_eq!(
        (a.verb.as_str(), a.api_group.as_str()),
        ("deletecollection", "apps")
    );
    let a = attrs("DELETE", "/apis/apps/v1/namespaces/a/deployments/d", "");
    assert_eq!(a.verb, "delete");
    let a = attrs("PATCH", "/api/v1/nodes/n", "");
    assert_eq!(
        (a.verb.as_str(), a.namespace.as_str(), a.name.as_str()),
        ("patch", "", "n")
    );
    let a = attrs("GET", "/api/v1/namespaces/x", "");
    assert_eq!(
        (
            a.verb.as_str(),
            a.resource.as_str(),
            a.name.as_str(),
            a.namespace.as_str()
        ),
        ("get", "namespaces", "x", "x")
    );
    let a = attrs("PUT", "/api/v1/namespaces/x/finalize", "");
    assert_eq!(
        (a.resource.as_str(), a.subresource.as_str()),
        ("namespaces", "finalize")
    );
    let a = attrs("POST", "/api/v1/namespaces/a/serviceaccounts/s/token", "");
    assert_eq!(
        (a.verb.as_str(), a.subresource.as_str()),
        ("create", "token")
    );
    let a = attrs("GET", "/healthz", "");
    assert!(!a.resource_request);
    assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/healthz"));
    let a = attrs("GET", "/apis/apps/v1", "");
    assert!(!a.resource_request);
}

#[test]
fn forbidden_status_has_upstreams_shape() {
    let a = attrs("GET", "/api/v1/namespaces/kube-system/pods", "");
    let e = forbidden(&a, "");
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "kube-system""#
    );
    assert_eq!(
        e.to_status()["details"],
        serde_json::json!({"kind": "pods"})
    );
    let a = attrs("GET", "/apis/apps/v1/namespaces/a/deployments/d", "");
    let e = forbidden(&a, "because");
    assert_eq!(
        e.message,
        r#"deployments.apps "d" is forbidden: User "u" cannot get resource "deployments" in API group "apps" in the namespace "a": because"#
    );
    let a = attrs("PATCH", "/api/v1/nodes/n/status", "");
    assert!(e.message.contains("deployments"));
    assert_eq!(
        forbidden(&a, "").message,
        r#"nodes "n" is forbidden: User "u" cannot patch resource "nodes/status" in API group "" at the cluster scope"#
    );
    let a = attrs("GET", "/metrics", "");
    assert_eq!(
        forbidden(&a, "").message,
        r#"forbidden: User "u" cannot get path "/metrics""#
    );
}

#[test]
fn modes_parse() {
    assert_eq!(parse_modes("Node,RBAC").unwrap(), [Mode::Node, Mode::Rbac]);
    assert!(parse_modes("ABAC").is_err());
    assert!(parse_modes("").is_err());
}

#[tokio::test]
async fn system_masters_is_allowed_before_any_mode() {
    let store = Store::new("/registry", Default::default(), None);
    let authz = Authorizer {
        modes: vec![Mode::AlwaysDeny],
        policy: Arc::new(Policy::default()),
    };
    let admin = user("kubeboot-admin", &["system:masters", AUTHENTICATED]);
    let a = request_attributes(&admin, "DELETE", "/api/v1/nodes/n", "");
    assert_eq!(authz.authorize(&store, &a).await.0, Decision::Allow);
    let other = user("bob", &[AUTHENTICATED]);
    let a = request_attributes(&other, "DELETE", "/api/v1/nodes/n", "");
    assert_eq!(
        authz.authorize(&store, &a).await,
        (Decision::Deny, "Everything is forbidden.".into())
    );
}
