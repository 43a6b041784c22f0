//! Service-account tokens and fault injection on the fake api-server: TokenRequest
//! issues a bound JWT that authenticates as the service account until it expires or its
//! pod is deleted; foreign, expired and wrong-audience tokens are 401; `kubectl create
//! token` works; `--testkit-fault` rules answer with a `Status` a set number of times.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use kubeboot_testkit::apiserver::harness::{Harness, SA_ISSUER, bearer_request};
use kubeboot_testkit::apiserver::{Fault, jwt};
use serde_json::{Value, json};

const TEST_DEADLINE: Duration = Duration::from_secs(120);
const KUBECTL: &str = "/usr/bin/kubectl";

async fn call(h: &Harness, method: &str, path: &str, body: Value) -> Result<(u16, Value)> {
    let (code, text) = h.request(method, path, Some(&body.to_string())).await?;
    Ok((
        code,
        serde_json::from_str(&text).with_context(|| text.clone())?,
    ))
}

async fn as_token(h: &Harness, token: &str, path: &str) -> Result<u16> {
    let url = h.server.url();
    Ok(
        bearer_request(&url, &h.pki.ca_cert, token, "GET", path, None)
            .await?
            .0,
    )
}

fn claims(token: &str) -> Result<Value> {
    let part = token.split('.').nth(1).context("no claims")?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part)?;
    Ok(serde_json::from_slice(&raw)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_issue_bound_tokens_that_authenticate() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, flow()).await?
}

async fn flow() -> Result<()> {
    let h = Harness::start().await?;
    let sa = json!({"metadata": {"name": "builder"}});
    let (code, _) = call(&h, "POST", "/api/v1/namespaces/default/serviceaccounts", sa).await?;
    assert_eq!(code, 201);
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    let (code, pod) = call(&h, "POST", "/api/v1/namespaces/default/pods", pod).await?;
    assert_eq!(code, 201);

    let token_path = "/api/v1/namespaces/default/serviceaccounts/builder/token";
    let (code, status) = call(
        &h,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/nobody/token",
        json!({}),
    )
    .await?;
    assert_eq!((code, &status["reason"]), (404, &json!("NotFound")));
    let short = json!({"spec": {"expirationSeconds": 60}});
    assert_eq!(call(&h, "POST", token_path, short).await?.0, 422);

    let req = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}});
    let (code, tr) = call(&h, "POST", token_path, req).await?;
    assert_eq!(code, 201, "{tr}");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert_eq!(tr["spec"]["boundObjectRef"]["uid"], pod["metadata"]["uid"]);
    let token = tr["status"]["token"].as_str().context("token")?;
    let c = claims(token)?;
    assert_eq!(c["iss"], SA_ISSUER);
    assert_eq!(c["aud"], json!([SA_ISSUER]));
    assert_eq!(c["sub"], "system:serviceaccount:default:builder");
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "p");
    // Authenticated, but RBAC grants a service account nothing by default (403), while
    // discovery is open to every authenticated user.
    assert_eq!(
        as_token(&h, token, "/api/v1/namespaces/default/pods").await?,
        403
    );
    assert_eq!(as_token(&h, token, "/api").await?, 200);
    assert_eq!(
        as_token(&h, "not-a-token", "/api/v1/namespaces/default/pods").await?,
        401
    );

    let other = json!({"spec": {"audiences": ["vault"]}});
    let (_, tr) = call(&h, "POST", token_path, other).await?;
    let vault = tr["status"]["token"].as_str().context("token")?;
    assert_eq!(
        as_token(&h, vault, "/api/v1/namespaces/default/pods").await?,
        401
    );

    // Signed by the right key but expired; then signed by a stranger's key.
    let key = jwt::SigningKey::from_file(&h.pki.sa_key)?;
    let mut expired = claims(token)?;
    expired["exp"] = json!(jiff::Timestamp::now().as_second() - 1);
    // A bad token is never taken for anonymous, not even on public paths (upstream's
    // `union.NewFailOnError` in front of the anonymous authenticator).
    assert_eq!(
        as_token(&h, &key.sign(&expired)?, "/version").await?,
        401,
        "public path"
    );
    assert_eq!(
        as_token(&h, &key.sign(&expired)?, "/api/v1/pods").await?,
        401
    );
    let stranger =
        jwt::SigningKey::from_pem(rcgen::KeyPair::generate()?.serialize_pem().as_bytes())?;
    assert_eq!(
        as_token(&h, &stranger.sign(&claims(token)?)?, "/api/v1/pods").await?,
        401
    );

    let (code, _) = h
        .request("DELETE", "/api/v1/namespaces/default/pods/p", None)
        .await?;
    assert_eq!(code, 200);
    assert_eq!(
        as_token(&h, token, "/api/v1/pods").await?,
        401,
        "bound pod deleted"
    );

    if std::path::Path::new(KUBECTL).exists() {
        let out = tokio::process::Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&h.kubeconfig)
            .args([
                "create",
                "token",
                "builder",
                "-n",
                "default",
                "--duration=20m",
            ])
            .output()
            .await?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)?;
        let c = claims(token.trim())?;
        assert_eq!(
            c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i),
            Some(1200)
        );
        assert_eq!(as_token(&h, token.trim(), "/api").await?, 200);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_answer_with_a_status_a_set_number_of_times() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start_with(|c, _| {
            c.faults.push(Fault::parse(
                "GET:/api/v1/namespaces/kube-system/secrets=503:2",
            )?);
            c.faults.push(Fault::parse("*:/apis/apps=401")?);
            Ok(())
        })
        .await?;
        let path = "/api/v1/namespaces/kube-system/secrets";
        for _ in 0..2 {
            let (code, body) = h.request("GET", path, None).await?;
            let status: Value = serde_json::from_str(&body)?;
            assert_eq!(
                (code, &status["kind"], &status["reason"]),
                (503, &json!("Status"), &json!("ServiceUnavailable"))
            );
        }
        assert_eq!(h.request("GET", path, None).await?.0, 200);
        assert_eq!(
            h.request(
                "POST",
                "/apis/apps/v1/namespaces/default/deployments",
                Some("{}")
            )
            .await?
            .0,
            401
        );
        Ok(())
    })
    .await?
}

/// Node binding as upstream's `TokenREST.Create` does it: the node must exist (404), a
/// given uid must match (409), the JWT carries `kubernetes.io.node`, the status gives
/// the lifetime asked (no stretch for a non-pod binding), and the token dies with its
/// Node. A pod-bound 3607 s token is stretched to a year in the JWT only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_bound_to_a_node_need_that_node_and_die_with_it() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, node_flow()).await?
}

async fn node_flow() -> Result<()> {
    let h = Harness::start().await?;
    let sa = json!({"metadata": {"name": "cp"}});
    let (code, _) = call(&h, "POST", "/api/v1/namespaces/default/serviceaccounts", sa).await?;
    assert_eq!(code, 201);
    let token_path = "/api/v1/namespaces/default/serviceaccounts/cp/token";
    let bound = |name: &str, uid: Option<&str>| {
        let mut r = json!({"apiVersion": "v1", "kind": "Node", "name": name});
        if let Some(uid) = uid {
            r["uid"] = json!(uid);
        }
        json!({"spec": {"boundObjectRef": r, "expirationSeconds": 3607}})
    };
    let (code, status) = call(&h, "POST", token_path, bound("m1", None)).await?;
    assert_eq!(
        (code, &status["reason"]),
        (404, &json!("NotFound")),
        "{status}"
    );
    assert_eq!(status["message"], "nodes \"m1\" not found");

    let node = json!({"metadata": {"name": "m1"}});
    let (code, node) = call(&h, "POST", "/api/v1/nodes", node).await?;
    assert_eq!(code, 201, "{node}");
    let uid = node["metadata"]["uid"].as_str().context("uid")?;
    let (code, status) = call(&h, "POST", token_path, bound("m1", Some("not-its-uid"))).await?;
    assert_eq!(
        (code, &status["reason"]),
        (409, &json!("Conflict")),
        "{status}"
    );
    let kind = json!({"spec": {"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Node", "name": "m1"}}});
    let (code, status) = call(&h, "POST", token_path, kind).await?;
    assert_eq!(
        (code, &status["reason"]),
        (400, &json!("BadRequest")),
        "{status}"
    );

    let before = jiff::Timestamp::now().as_second();
    let (code, tr) = call(&h, "POST", token_path, bound("m1", Some(uid))).await?;
    assert_eq!(code, 201, "{tr}");
    assert_eq!(tr["spec"]["boundObjectRef"]["uid"], uid);
    let token = tr["status"]["token"].as_str().context("token")?;
    let c = claims(token)?;
    assert_eq!(
        c["kubernetes.io"]["node"],
        json!({"name": "m1", "uid": uid})
    );
    assert!(c["kubernetes.io"]["pod"].is_null());
    let life = c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i);
    assert_eq!(life, Some(3607), "a Node-bound token is not stretched");
    let granted = tr["status"]["expirationTimestamp"]
        .as_str()
        .context("expirationTimestamp")?
        .parse::<jiff::Timestamp>()?
        .as_second();
    assert!(
        (before + 3607..=before + 3617).contains(&granted),
        "{granted}"
    );
    assert_eq!(as_token(&h, token, "/api").await?, 200);

    // Replaced by a Node of the same name: the old token no longer authenticates.
    let (code, _) = h.request("DELETE", "/api/v1/nodes/m1", None).await?;
    assert_eq!(code, 200);
    assert_eq!(as_token(&h, token, "/api").await?, 401, "node deleted");
    let (code, _) = call(
        &h,
        "POST",
        "/api/v1/nodes",
        json!({"metadata": {"name": "m1"}}),
    )
    .await?;
    assert_eq!(code, 201);
    assert_eq!(as_token(&h, token, "/api").await?, 401, "node replaced");

    // The kubelet's pod-bound 3607 s token: a year in the JWT, 3607 s in the status.
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    assert_eq!(
        call(&h, "POST", "/api/v1/namespaces/default/pods", pod)
            .await?
            .0,
        201
    );
    let req = json!({"spec": {"expirationSeconds": 3607,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p"}}});
    let (code, tr) = call(&h, "POST", token_path, req).await?;
    assert_eq!(code, 201, "{tr}");
    let c = claims(tr["status"]["token"].as_str().context("token")?)?;
    let life = c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i);
    assert_eq!(life, Some(365 * 24 * 3600));
    assert!(c["kubernetes.io"]["warnafter"].is_i64());
    let granted = tr["status"]["expirationTimestamp"]
        .as_str()
        .context("expirationTimestamp")?
        .parse::<jiff::Timestamp>()?
        .as_second();
    assert!(granted - before <= 3617, "the status says what was asked");
    Ok(())
}
