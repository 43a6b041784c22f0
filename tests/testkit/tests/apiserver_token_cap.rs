//! `--service-account-max-token-expiration` as upstream's kube-apiserver applies it
//! (pkg/registry/core/serviceaccount/storage/token.go, `TokenREST.Create`; the flag's
//! bounds in pkg/controlplane/apiserver/options/options.go, `Complete`): a longer
//! request is granted the cap, in the answer's `spec.expirationSeconds`, its status and
//! the JWT, before the 3607 s pod-bound stretch is considered; a cap outside 1 h..2^32 s
//! stops the server. And the checkpointer renews such a token from what was granted.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::authentication::v1::TokenRequest;
use kubeboot_testkit::apiserver::harness::Harness;
use serde_json::{Value, json};

const TEST_DEADLINE: Duration = Duration::from_secs(120);
const HOUR: Duration = Duration::from_secs(3600);

async fn call(h: &Harness, path: &str, body: Value) -> Result<(u16, Value)> {
    let (code, text) = h.request("POST", path, Some(&body.to_string())).await?;
    Ok((
        code,
        serde_json::from_str(&text).with_context(|| text.clone())?,
    ))
}

/// exp - iat of a JWT, and its `warnafter`.
fn life(token: &str) -> Result<(i64, Value)> {
    let part = token.split('.').nth(1).context("no claims")?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part)?;
    let c: Value = serde_json::from_slice(&raw)?;
    let life = c["exp"].as_i64().zip(c["iat"].as_i64()).map(|(e, i)| e - i);
    Ok((
        life.context("exp, iat")?,
        c["kubernetes.io"]["warnafter"].clone(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_server_grants_the_cap_and_the_checkpointer_renews_from_it() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, capped()).await?
}

async fn capped() -> Result<()> {
    let h = Harness::start_with(|c, _| {
        c.service_account_max_token_expiration = HOUR;
        Ok(())
    })
    .await?;
    let created = |c: (u16, Value)| assert_eq!(c.0, 201, "{}", c.1);
    created(
        call(
            &h,
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"metadata": {"name": "cp"}}),
        )
        .await?,
    );
    created(call(&h, "/api/v1/nodes", json!({"metadata": {"name": "m1"}})).await?);
    let pod = json!({"metadata": {"name": "p"},
        "spec": {"serviceAccountName": "cp", "containers": [{"name": "c", "image": "x"}]}});
    created(call(&h, "/api/v1/namespaces/default/pods", pod).await?);
    let path = "/api/v1/namespaces/default/serviceaccounts/cp/token";

    // What the checkpointer asks for a projection of 2 h (checkpoint/tokens.rs, `request`).
    let asked = kubeboot::checkpoint::tokens::request("m1", None, Some(7200));
    let before = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())?;
    let (code, tr) = call(&h, path, serde_json::to_value(&asked)?).await?;
    assert_eq!(code, 201, "{tr}");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600, "{tr}");
    let token = tr["status"]["token"].as_str().context("token")?;
    assert_eq!(life(token)?.0, 3600);
    let expires: jiff::Timestamp = tr["status"]["expirationTimestamp"]
        .as_str()
        .context("expirationTimestamp")?
        .parse()?;
    let from = |t: jiff::Timestamp| t.duration_since(before).as_secs();
    assert!((3600..=3610).contains(&from(expires)), "{tr}");
    // Renewed at 80 % of the hour granted (48 min), not of the two hours asked (96 min).
    let granted: TokenRequest = serde_json::from_value(tr.clone())?;
    let status = granted.status.as_ref().context("status")?;
    let renew = kubeboot::checkpoint::tokens::renew_at(&granted, status, before);
    assert!((2880..=2890).contains(&from(renew)), "{renew} {tr}");

    // Shorter requests are granted as asked.
    let r = json!({"spec": {"expirationSeconds": 1800,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": "m1"}}});
    let (_, tr) = call(&h, path, r).await?;
    assert_eq!(tr["spec"]["expirationSeconds"], 1800, "{tr}");
    assert_eq!(
        life(tr["status"]["token"].as_str().context("token")?)?.0,
        1800
    );

    // The kubelet's pod-bound 3607 s request is capped first, so it is not stretched.
    let r = json!({"spec": {"expirationSeconds": 3607,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p"}}});
    let (_, tr) = call(&h, path, r).await?;
    assert_eq!(tr["spec"]["expirationSeconds"], 3600, "{tr}");
    let (l, warn) = life(tr["status"]["token"].as_str().context("token")?)?;
    assert_eq!((l, warn), (3600, Value::Null), "{tr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_under_an_hour_stops_the_server() -> Result<()> {
    let started = tokio::time::timeout(
        TEST_DEADLINE,
        Harness::start_with(|c, _| {
            c.service_account_max_token_expiration = Duration::from_secs(1800);
            Ok(())
        }),
    )
    .await?;
    let e = started
        .err()
        .context("the server started with a 30 min cap")?;
    assert!(
        format!("{e:#}").contains(
            "service-account-max-token-expiration must be between 1 hour and 2^32 seconds"
        ),
        "{e:#}"
    );
    Ok(())
}
