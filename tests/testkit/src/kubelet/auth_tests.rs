use super::*;

fn subs(method: &str, path: &str) -> Vec<(String, String)> {
    request_attributes(method, path)
        .into_iter()
        .map(|a| (a.verb, a.subresource))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn attributes_follow_the_node_authorizer_getter() {
    assert_eq!(
        subs("GET", "/pods"),
        pairs(&[("get", "pods"), ("get", "proxy")])
    );
    assert_eq!(
        subs("GET", "/pods/"),
        pairs(&[("get", "pods"), ("get", "proxy")])
    );
    assert_eq!(subs("GET", "/podsx"), pairs(&[("get", "proxy")]));
    assert_eq!(subs("GET", "/stats/summary"), pairs(&[("get", "stats")]));
    assert_eq!(
        subs("GET", "/metrics/cadvisor"),
        pairs(&[("get", "metrics")])
    );
    assert_eq!(subs("GET", "/logs/x"), pairs(&[("get", "log")]));
    assert_eq!(
        subs("POST", "/checkpoint/a/b/c"),
        pairs(&[("create", "checkpoint")])
    );
    assert_eq!(
        subs("GET", "/healthz"),
        pairs(&[("get", "healthz"), ("get", "proxy")])
    );
    assert_eq!(
        subs("GET", "/runningpods/"),
        pairs(&[("get", "pods"), ("get", "proxy")])
    );
    assert_eq!(subs("POST", "/exec/a/b/c"), pairs(&[("create", "proxy")]));
    assert_eq!(subs("DELETE", "/x"), pairs(&[("delete", "proxy")]));
    assert_eq!(subs("HEAD", "/pods"), pairs(&[("", "pods"), ("", "proxy")]));
}

#[test]
fn token_review_answers() {
    let ok = json!({"status": {"authenticated": true, "user": {"username": "system:serviceaccount:kube-system:pod-checkpointer", "uid": "u1", "groups": ["system:serviceaccounts"], "extra": {"k": ["v"]}}}});
    let u = token_review_user(&ok).unwrap().unwrap();
    assert_eq!(u.name, "system:serviceaccount:kube-system:pod-checkpointer");
    assert_eq!(u.uid, "u1");
    assert_eq!(u.groups, vec!["system:serviceaccounts".to_string()]);
    assert_eq!(u.extra, json!({"k": ["v"]}));
    assert!(
        token_review_user(&json!({"status": {"authenticated": false}}))
            .unwrap()
            .is_none()
    );
    assert!(token_review_user(&json!({"status": {}})).unwrap().is_none());
    let err = token_review_user(&json!({"status": {"error": "token expired"}})).unwrap_err();
    assert_eq!(err.to_string(), "token expired");
    let tr = token_review("abc");
    assert_eq!(tr["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(
        tr["spec"],
        json!({"token": "abc"}),
        "no audiences: the kubelet sets none"
    );
}

#[test]
fn subject_access_review_shape_and_decisions() {
    let u = User::new("kubeboot", vec!["system:masters".into()]);
    let a = Attrs {
        verb: "get".into(),
        subresource: "pods".into(),
    };
    let sar = subject_access_review(&u, "master-1", &a);
    assert_eq!(sar["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(sar["kind"], "SubjectAccessReview");
    assert_eq!(
        sar["spec"]["resourceAttributes"],
        json!({"namespace": "", "verb": "get", "group": "", "version": "v1",
               "resource": "nodes", "subresource": "pods", "name": "master-1"})
    );
    assert_eq!(sar["spec"]["user"], "kubeboot");
    assert_eq!(sar["spec"]["groups"], json!(["system:masters"]));
    assert_eq!(
        sar_decision(&json!({"status": {"allowed": true}})),
        Decision::Allow
    );
    assert_eq!(
        sar_decision(&json!({"status": {"allowed": false, "denied": true}})),
        Decision::Deny
    );
    assert_eq!(
        sar_decision(&json!({"status": {"allowed": false, "reason": "no"}})),
        Decision::NoOpinion
    );
}

#[test]
fn refusals_are_the_filters_statuses() {
    let a = Attrs {
        verb: "get".into(),
        subresource: "proxy".into(),
    };
    assert_eq!(
        Refusal::Unauthenticated.status_and_body(),
        (401, "Unauthorized".into())
    );
    assert_eq!(
        Refusal::AuthzError("u".into(), a.clone()).status_and_body(),
        (
            500,
            "Authorization error (user=u, verb=get, resource=nodes, subresource=proxy)".into()
        )
    );
    assert_eq!(
        Refusal::Forbidden("u".into(), a).status_and_body(),
        (
            403,
            "Forbidden (user=u, verb=get, resource=nodes, subresource=proxy)".into()
        )
    );
    assert_eq!(User::anonymous().name, "system:anonymous");
    assert_eq!(
        User::anonymous().groups,
        vec!["system:unauthenticated".to_string()]
    );
}

#[test]
fn cache_expires_and_zero_ttl_caches_nothing() {
    let mut c = TtlCache::default();
    let t0 = Instant::now();
    c.put("k".into(), 1, Duration::from_secs(30), t0);
    assert_eq!(c.get("k", t0 + Duration::from_secs(29)), Some(1));
    assert_eq!(c.get("k", t0 + Duration::from_secs(30)), None);
    c.put("z".into(), 2, Duration::ZERO, t0);
    assert_eq!(c.get("z", t0), None);
}

#[test]
fn flags_and_their_legacy_defaults() {
    let d = AuthFlags::default();
    assert!(d.anonymous && !d.token_webhook && d.mode == Mode::AlwaysAllow);
    assert_eq!(d.token_webhook_cache_ttl, Duration::from_secs(120));
    assert_eq!(d.authorized_ttl, Duration::from_secs(300));
    assert_eq!(d.unauthorized_ttl, Duration::from_secs(30));
    let mut f = AuthFlags::default();
    assert!(f.set("anonymous-auth", "false").unwrap().is_ok());
    assert!(
        f.set("authentication-token-webhook", "true")
            .unwrap()
            .is_ok()
    );
    assert!(f.set("authorization-mode", "Webhook").unwrap().is_ok());
    assert!(f.set("authorization-mode", "RBAC").unwrap().is_err());
    assert!(f.set("anonymous-auth", "maybe").unwrap().is_err());
    assert!(f.set("no-such-flag", "1").is_none());
    assert!(!f.anonymous && f.token_webhook && f.mode == Mode::Webhook);
    assert_eq!(
        f.check(false).unwrap_err().to_string(),
        "no client provided, cannot use webhook authentication"
    );
    assert!(f.check(true).is_ok());
    f.token_webhook = false;
    assert!(
        f.check(false)
            .unwrap_err()
            .to_string()
            .contains("webhook authorization")
    );
}
