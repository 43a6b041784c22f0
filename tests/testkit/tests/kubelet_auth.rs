//! The fake kubelet's 10250 against a stub api-server that answers TokenReview and
//! SubjectAccessReview in upstream's JSON shapes: HTTPS only, client certificates
//! verified against `--client-ca-file`, bearer tokens reviewed, anonymous refused, every
//! request authorized per attribute set (`nodes/pods`, then `nodes/proxy`), answers
//! cached, and refusal (500 with a certificate, 401 with a token) when the api-server
//! cannot be reached: the kubelet's API after a power-off (bootkube #1025).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use kubeboot_testkit::kubelet::harness::{Creds, FakeKubelet, KubeletOptions, http_get_at};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fake-kubelet");

/// What the stub was asked, in order: (path, request body).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// The stub's policy: TokenReview accepts `good-token` as alice (group `devs`); a
/// SubjectAccessReview allows `kubeboot-testkit` on `nodes/proxy` only, denies alice
/// outright, and has no opinion otherwise. Everything else is 404.
fn answer(path: &str, body: &Value) -> (u16, Value) {
    let mut out = body.clone();
    match path {
        "/apis/authentication.k8s.io/v1/tokenreviews" => {
            out["status"] = if body["spec"]["token"] == "good-token" {
                json!({"authenticated": true, "user": {"username": "alice", "uid": "a1", "groups": ["devs", "system:authenticated"]}})
            } else {
                json!({"authenticated": false})
            };
            (201, out)
        }
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => {
            let spec = &body["spec"];
            let sub = &spec["resourceAttributes"]["subresource"];
            out["status"] = match spec["user"].as_str() {
                Some("kubeboot-testkit") if sub == "proxy" => json!({"allowed": true}),
                Some("alice") => json!({"allowed": false, "denied": true, "reason": "no"}),
                _ => json!({"allowed": false}),
            };
            (201, out)
        }
        _ => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"}),
        ),
    }
}

/// Starts the stub on a thread of its own; returns its address and the call log.
fn stub() -> Result<(SocketAddr, Calls)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let calls: Calls = Arc::default();
    let log = calls.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            if path.starts_with("/apis/authentication")
                                || path.starts_with("/apis/authorization")
                            {
                                log.lock().unwrap().push((path.clone(), v.clone()));
                            }
                            let (code, out) = answer(&path, &v);
                            let mut r = Response::new(Full::new(Bytes::from(out.to_string())));
                            *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    Ok((addr, calls))
}

fn kubeconfig(dir: &Path, server: &str) -> Result<PathBuf> {
    let p = dir.join("kubeconfig");
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\n\
             users:\n- name: u\n  user: {{token: kubelet-token}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
             current-context: x\n"
        ),
    )?;
    Ok(p)
}

fn get(k: &FakeKubelet, path: &str, creds: Creds) -> (u16, String) {
    let (code, body) = k.secure_get(path, &creds).unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

fn reviews(calls: &Calls, kind: &str) -> Vec<Value> {
    calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p.contains(kind))
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn webhook_authn_and_authz_follow_the_api_server() -> Result<()> {
    let t = tempfile::tempdir()?;
    let (addr, calls) = stub()?;
    let opts = KubeletOptions {
        kubeconfig: Some(kubeconfig(t.path(), &format!("http://{addr}"))?),
        ..Default::default()
    };
    let k = FakeKubelet::start(BIN, opts)?;
    assert_eq!(k.read_only_port, 0, "readOnlyPort: 0 by default");
    assert!(
        !matches!(http_get_at(k.node_ip, k.port, "/pods"), Ok((200, _))),
        "10250 must not answer plain HTTP"
    );

    // Anonymous: 401 before any review.
    assert_eq!(
        get(&k, "/pods", Creds::Anonymous),
        (401, "Unauthorized".into())
    );
    assert!(calls.lock().unwrap().is_empty());

    // The harness's client certificate: nodes/pods has no opinion, nodes/proxy allows.
    assert_eq!(get(&k, "/pods", Creds::ClientCert).0, 200);
    let sars = reviews(&calls, "subjectaccessreviews");
    assert_eq!(sars.len(), 2, "{sars:?}");
    let attrs = |s: &Value| s["spec"]["resourceAttributes"].clone();
    assert_eq!(
        attrs(&sars[0]),
        json!({"namespace": "", "verb": "get", "group": "", "version": "v1", "resource": "nodes", "subresource": "pods", "name": "node1"})
    );
    assert_eq!(attrs(&sars[1])["subresource"], "proxy");
    assert_eq!(sars[0]["spec"]["user"], "kubeboot-testkit");
    assert_eq!(sars[0]["spec"]["groups"], json!(["system:masters"]));
    assert_eq!(sars[0]["apiVersion"], "authorization.k8s.io/v1");
    // Both answers are cached (5 min allowed, 30 s otherwise): no new review.
    assert_eq!(get(&k, "/pods", Creds::ClientCert).0, 200);
    assert_eq!(reviews(&calls, "subjectaccessreviews").len(), 2);

    // A token the api-server accepts, for a user it denies: 403 naming the last attributes.
    let (code, body) = get(&k, "/pods", Creds::Bearer("good-token".into()));
    assert_eq!(
        (code, body.as_str()),
        (
            403,
            "Forbidden (user=alice, verb=get, resource=nodes, subresource=proxy)"
        )
    );
    let trs = reviews(&calls, "tokenreviews");
    assert_eq!(trs.len(), 1);
    assert_eq!(trs[0]["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(trs[0]["spec"], json!({"token": "good-token"}));
    let sars = reviews(&calls, "subjectaccessreviews");
    assert_eq!(
        sars.last().unwrap()["spec"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    assert_eq!(sars.last().unwrap()["spec"]["uid"], "a1");
    // The token's review is cached too (2 min).
    get(&k, "/healthz", Creds::Bearer("good-token".into()));
    assert_eq!(reviews(&calls, "tokenreviews").len(), 1);

    // A token the api-server does not accept: 401, never anonymous.
    assert_eq!(
        get(&k, "/pods", Creds::Bearer("bad-token".into())),
        (401, "Unauthorized".into())
    );
    // /healthz on the healthz port stays plain and open.
    assert!(k.healthz());
    Ok(())
}

#[test]
fn refuses_when_the_api_server_cannot_be_reached() -> Result<()> {
    let t = tempfile::tempdir()?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let opts = KubeletOptions {
        kubeconfig: Some(kubeconfig(t.path(), &format!("http://{closed}"))?),
        ..Default::default()
    };
    let k = FakeKubelet::start(BIN, opts)?;
    // The certificate authenticates locally; its authorization cannot be asked: 500.
    assert_eq!(
        get(&k, "/pods", Creds::ClientCert),
        (500, "Authorization error (user=kubeboot-testkit, verb=get, resource=nodes, subresource=pods)".into())
    );
    // A token cannot even be authenticated: 401.
    assert_eq!(
        get(&k, "/pods", Creds::Bearer("good-token".into())),
        (401, "Unauthorized".into())
    );
    assert_eq!(get(&k, "/pods", Creds::Anonymous).0, 401);
    // Errors are not cached: still refused, and the healthz port still answers.
    assert_eq!(get(&k, "/pods", Creds::ClientCert).0, 500);
    assert!(k.healthz());
    Ok(())
}

#[test]
fn always_allow_and_anonymous_flags() -> Result<()> {
    // No kubeconfig: the harness picks AlwaysAllow; the certificate is still required.
    let k = FakeKubelet::start(BIN, KubeletOptions::default())?;
    assert_eq!(get(&k, "/pods", Creds::ClientCert).0, 200);
    assert_eq!(get(&k, "/pods", Creds::Anonymous).0, 401);
    drop(k);
    let opts = KubeletOptions {
        anonymous_auth: true,
        read_only_port: true,
        ..Default::default()
    };
    let k = FakeKubelet::start(BIN, opts)?;
    assert_eq!(get(&k, "/pods", Creds::Anonymous).0, 200);
    assert_ne!(k.read_only_port, 0);
    assert!(
        k.pods_on(k.read_only_port).is_ok(),
        "the read-only port is plain HTTP without auth"
    );
    Ok(())
}

#[test]
fn webhook_without_a_kubeconfig_does_not_start() {
    let opts = KubeletOptions {
        authorization_mode: Some("Webhook".into()),
        ..Default::default()
    };
    let err = FakeKubelet::start(BIN, opts)
        .err()
        .expect("a webhook needs an api-server client");
    assert!(
        format!("{err:#}").contains("no client provided, cannot use webhook authorization"),
        "{err:#}"
    );
}
