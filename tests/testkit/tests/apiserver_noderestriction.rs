//! NodeRestriction on the fake api-server, as upstream's admission plugin refuses a
//! kubelet (`system:node:<name>` in `system:nodes`): labels outside the kubelet's set,
//! taints, other nodes, mirror pods without their Node as controller or with API
//! references, tokens not bound to one of its pods, labels through a pod's status.

use std::time::Duration;

use anyhow::{Context, Result};
use kubeboot_testkit::apiserver::harness::{Harness, bearer_request};
use serde_json::{Value, json};

const TEST_DEADLINE: Duration = Duration::from_secs(120);
const NODE_TOKEN: &str = "node1-token-for-tests";

async fn as_node(h: &Harness, method: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
    let url = h.server.url();
    let body = body.to_string();
    let (code, text) =
        bearer_request(&url, &h.pki.ca_cert, NODE_TOKEN, method, path, Some(&body)).await?;
    Ok((code, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn as_admin(h: &Harness, method: &str, path: &str, body: &Value) -> Result<(u16, Value)> {
    let (code, text) = h.request(method, path, Some(&body.to_string())).await?;
    Ok((
        code,
        serde_json::from_str(&text).with_context(|| text.clone())?,
    ))
}

/// Asserts a 403 whose message ends with `why`.
fn refused(r: (u16, Value), why: &str) {
    let (code, body) = r;
    assert_eq!(code, 403, "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.ends_with(why), "{msg:?} should end with {why:?}");
    assert_eq!(body["reason"], "Forbidden", "{body}");
}

fn mirror_pod(name: &str, owner: Value, extra_spec: Value) -> Value {
    let mut spec = json!({"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]});
    if let (Some(s), Some(x)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(x.clone());
    }
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system",
            "annotations": {"kubernetes.io/config.mirror": "h", "kubernetes.io/config.source": "file"},
            "ownerReferences": owner},
        "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restriction_refuses_what_upstream_refuses() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, flow()).await?
}

async fn flow() -> Result<()> {
    let h = Harness::start_with(|cfg, dir| {
        let p = dir.join("tokens.csv");
        std::fs::write(
            &p,
            format!("{NODE_TOKEN},system:node:n1,n1,\"system:nodes\"\n"),
        )?;
        cfg.token_auth_file = Some(p);
        Ok(())
    })
    .await?;
    let nodes = "/api/v1/nodes";
    let role = "node-role.kubernetes.io/control-plane";

    // Registration: only itself, only with the kubelet's labels.
    let node = |name: &str, labels: Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}});
    let r = as_node(&h, "POST", nodes, &node("n1", json!({role: ""}))).await?;
    refused(
        r,
        &format!("node \"n1\" is not allowed to set the following labels: {role}"),
    );
    let r = as_node(&h, "POST", nodes, &node("n2", json!({}))).await?;
    refused(r, "node \"n1\" is not allowed to modify node \"n2\"");
    let ok = json!({"kubernetes.io/hostname": "n1", "example.com/pool": "a"});
    let (code, created) = as_node(&h, "POST", nodes, &node("n1", ok)).await?;
    assert_eq!(code, 201, "{created}");

    // The administrator sets the role; the node may neither drop it nor touch taints.
    let (code, mut n) = as_admin(&h, "GET", "/api/v1/nodes/n1", &json!(null)).await?;
    assert_eq!(code, 200, "{n}");
    n["metadata"]["labels"][role] = json!("");
    let (code, n) = as_admin(&h, "PUT", "/api/v1/nodes/n1", &n).await?;
    assert_eq!(code, 200, "{n}");
    let mut dropped = n.clone();
    if let Some(l) = dropped["metadata"]["labels"].as_object_mut() {
        l.remove(role);
    }
    let r = as_node(&h, "PUT", "/api/v1/nodes/n1", &dropped).await?;
    refused(r, &format!("is not allowed to modify labels: {role}"));
    let mut tainted = n.clone();
    tainted["spec"]["taints"] = json!([{"key": "k", "effect": "NoSchedule"}]);
    let r = as_node(&h, "PUT", "/api/v1/nodes/n1", &tainted).await?;
    refused(r, "node \"n1\" is not allowed to modify taints");
    let mut relabelled = n.clone();
    relabelled["metadata"]["labels"]["example.com/pool"] = json!("b");
    let (code, n) = as_node(&h, "PUT", "/api/v1/nodes/n1", &relabelled).await?;
    assert_eq!(
        code, 200,
        "a label outside kubernetes.io is the node's own: {n}"
    );
    let uid = n["metadata"]["uid"]
        .as_str()
        .context("node uid")?
        .to_string();

    // Mirror pods: owned by the Node (its UID) as controller, no API references.
    let pods = "/api/v1/namespaces/kube-system/pods";
    let owner = |uid: &str| json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": uid, "controller": true}]);
    let r = as_node(&h, "POST", pods, &mirror_pod("a", json!([]), json!({}))).await?;
    refused(
        r,
        "node \"n1\" can only create pods with an owner reference set to itself",
    );
    let r = as_node(&h, "POST", pods, &mirror_pod("a", owner("nope"), json!({}))).await?;
    refused(r, &format!("node n1 UID mismatch: expected nope got {uid}"));
    let mut not_controller = owner(&uid);
    not_controller[0]["controller"] = json!(false);
    let r = as_node(
        &h,
        "POST",
        pods,
        &mirror_pod("a", not_controller, json!({})),
    )
    .await?;
    refused(
        r,
        "node \"n1\" can only create pods with a controller owner reference set to itself",
    );
    let secret = json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]});
    let r = as_node(&h, "POST", pods, &mirror_pod("a", owner(&uid), secret)).await?;
    refused(r, "node \"n1\" can not create pods that reference secrets");
    let sa = json!({"serviceAccountName": "builder"});
    let r = as_node(&h, "POST", pods, &mirror_pod("a", owner(&uid), sa)).await?;
    refused(
        r,
        "node \"n1\" can not create pods that reference a service account",
    );
    let (code, pod) = as_node(&h, "POST", pods, &mirror_pod("a", owner(&uid), json!({}))).await?;
    assert_eq!(code, 201, "{pod}");

    // Its pod's status, never its labels.
    let mut st = pod.clone();
    st["metadata"]["labels"] = json!({"x": "y"});
    st["status"] = json!({"phase": "Running"});
    let r = as_node(&h, "PUT", &format!("{pods}/a/status"), &st).await?;
    refused(r, "node \"n1\" cannot update labels through pod status");
    let mut st = pod.clone();
    st["status"] = json!({"phase": "Running"});
    let (code, body) = as_node(&h, "PUT", &format!("{pods}/a/status"), &st).await?;
    assert_eq!(code, 200, "{body}");

    // Tokens only bound to one of its pods, by UID.
    let token = "/api/v1/namespaces/kube-system/serviceaccounts/default/token";
    let tr = |bound: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": [], "boundObjectRef": bound}});
    let r = as_node(&h, "POST", token, &tr(json!(null))).await?;
    refused(r, "node requested token not bound to a pod");
    let r = as_node(
        &h,
        "POST",
        token,
        &tr(json!({"apiVersion": "v1", "kind": "Pod", "name": "a", "uid": "stale"})),
    )
    .await?;
    refused(
        r,
        "the UID in the bound object reference (stale) does not match the UID in record. The object might have been deleted and then recreated",
    );
    Ok(())
}
