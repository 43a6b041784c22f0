//! Authorization on the fake api-server, as `--authorization-mode=Node,RBAC`: the
//! seeded bootstrap policy, RBAC bindings read from etcd (a new binding takes effect),
//! the upstream 403 `Status`, and the review endpoints (TokenReview and
//! SubjectAccessReview) answering with the same authenticators and authorizer.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kubeboot_testkit::apiserver::harness::{Harness, SA_ISSUER, bearer_request};
use serde_json::{Value, json};

const TEST_DEADLINE: Duration = Duration::from_secs(120);

async fn call(h: &Harness, method: &str, path: &str, body: Value) -> Result<(u16, Value)> {
    let (code, text) = h.request(method, path, Some(&body.to_string())).await?;
    Ok((
        code,
        serde_json::from_str(&text).with_context(|| text.clone())?,
    ))
}

async fn as_token(h: &Harness, token: &str, method: &str, path: &str) -> Result<(u16, Value)> {
    let url = h.server.url();
    let (code, text) = bearer_request(&url, &h.pki.ca_cert, token, method, path, None).await?;
    Ok((code, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn sar(user: &str, groups: &[&str], attrs: Value) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, "resourceAttributes": attrs}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_is_enforced_and_reviews_answer() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, flow()).await?
}

async fn flow() -> Result<()> {
    let h = Harness::start().await?;
    // The bootstrap policy is in etcd once /readyz passed.
    let (code, crb) = call(
        &h,
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cluster-admin",
        Value::Null,
    )
    .await?;
    assert_eq!(code, 200);
    assert_eq!(crb["subjects"][0]["name"], "system:masters");

    // A service account with a token.
    let sa = json!({"metadata": {"name": "reader"}});
    let (code, _) = call(&h, "POST", "/api/v1/namespaces/default/serviceaccounts", sa).await?;
    assert_eq!(code, 201);
    let path = "/api/v1/namespaces/default/serviceaccounts/reader/token";
    let (code, tr) = call(&h, "POST", path, json!({"spec": {}})).await?;
    assert_eq!(code, 201, "{tr}");
    let token = tr["status"]["token"].as_str().context("token")?.to_string();

    // Refused, with upstream's Status.
    let (code, st) = as_token(&h, &token, "GET", "/api/v1/namespaces/kube-system/pods").await?;
    assert_eq!(code, 403, "{st}");
    assert_eq!(st["reason"], "Forbidden");
    assert_eq!(
        st["message"],
        r#"pods is forbidden: User "system:serviceaccount:default:reader" cannot list resource "pods" in API group "" in the namespace "kube-system""#
    );
    assert_eq!(st["details"], json!({"kind": "pods"}));
    let (code, _) = as_token(
        &h,
        &token,
        "GET",
        "/api/v1/namespaces/kube-system/pods?watch=true",
    )
    .await?;
    assert_eq!(code, 403);

    // SubjectAccessReview says the same, then a RoleBinding (in etcd) grants it.
    let ask = sar(
        "system:serviceaccount:default:reader",
        &["system:serviceaccounts", "system:authenticated"],
        json!({"namespace": "kube-system", "verb": "list", "resource": "pods"}),
    );
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (code, r) = call(&h, "POST", sar_path, ask.clone()).await?;
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["status"]["allowed"], false);
    let binding = json!({"metadata": {"name": "read-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]});
    let role = json!({"metadata": {"name": "view-pods"},
        "rules": [{"verbs": ["list", "watch"], "apiGroups": [""], "resources": ["pods"]}]});
    let rb = "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings";
    let (code, _) = call(&h, "POST", rb, binding).await?;
    assert_eq!(code, 201);
    // The binding names a missing role: RBAC says so in the reason.
    let (_, r) = call(&h, "POST", sar_path, ask.clone()).await?;
    assert_eq!(
        r["status"]["reason"],
        r#"RBAC: clusterrole.rbac.authorization.k8s.io "view-pods" not found"#
    );
    let cr = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
    let (code, _) = call(&h, "POST", cr, role).await?;
    assert_eq!(code, 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _) = as_token(&h, &token, "GET", "/api/v1/namespaces/kube-system/pods").await?;
        if code == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the new binding never took effect ({code})");
        }
        tokio::task::yield_now().await;
    }
    let (_, r) = call(&h, "POST", sar_path, ask).await?;
    assert_eq!(r["status"]["allowed"], true, "{r}");
    // Only where it is bound, and only the verbs it names.
    let (code, _) = as_token(&h, &token, "GET", "/api/v1/namespaces/default/pods").await?;
    assert_eq!(code, 403);
    let (code, _) = as_token(&h, &token, "GET", "/api/v1/namespaces/kube-system/pods/x").await?;
    assert_eq!(code, 403);

    // system:masters may do anything, whatever RBAC holds.
    let (_, r) = call(
        &h,
        "POST",
        sar_path,
        sar(
            "someone",
            &["system:masters"],
            json!({"verb": "delete", "resource": "nodes", "name": "n"}),
        ),
    )
    .await?;
    assert_eq!(r["status"]["allowed"], true);
    // Invalid reviews are 422.
    let (code, r) = call(&h, "POST", sar_path, json!({"spec": {"user": "u"}})).await?;
    assert_eq!((code, r["reason"].as_str()), (422, Some("Invalid")), "{r}");

    // TokenReview: the same authenticators.
    let tr_path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}});
    let (code, r) = call(&h, "POST", tr_path, review).await?;
    assert_eq!(code, 201, "{r}");
    assert_eq!(r["status"]["authenticated"], true);
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:default:reader"
    );
    let groups = r["status"]["user"]["groups"].as_array().context("groups")?;
    assert!(groups.contains(&json!("system:serviceaccounts:default")));
    assert!(groups.contains(&json!("system:authenticated")));
    assert_eq!(r["status"]["audiences"], json!([SA_ISSUER]));
    let (code, r) = call(&h, "POST", tr_path, json!({"spec": {"token": "nope"}})).await?;
    assert_eq!(code, 201);
    assert!(r["status"].get("authenticated").is_none(), "{r}");
    assert!(r["status"]["error"].is_string());
    let (code, _) = call(&h, "POST", tr_path, json!({"spec": {}})).await?;
    assert_eq!(code, 400);
    let (code, _) = call(&h, "GET", tr_path, Value::Null).await?;
    assert_eq!(code, 405);
    // Both are in discovery, create only.
    let (code, d) = call(&h, "GET", "/apis/authorization.k8s.io/v1", Value::Null).await?;
    assert_eq!(code, 200);
    assert_eq!(d["resources"][0]["verbs"], json!(["create"]));
    Ok(())
}
