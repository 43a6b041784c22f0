//! Shared by `controllers.rs` and `scheduler.rs` (included with `#[path]`): the doubles
//! as child processes with their logs kept, object builders, a deadline-bounded poll,
//! and an api-server restart on the same port. On its own this file has no tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::apiserver::store::EtcdConfig;
use kubeboot_testkit::apiserver::{ApiServer, Config};
use serde_json::{Value, json};

pub const TEST_DEADLINE: Duration = Duration::from_secs(150);
pub const STEP: Duration = Duration::from_secs(30);

/// Log files of the processes a test started (in a directory that outlives the
/// harness), printed if the test fails.
#[derive(Clone)]
pub struct Logs {
    dir: Arc<tempfile::TempDir>,
    files: Arc<Mutex<Vec<PathBuf>>>,
}

impl Logs {
    pub fn new() -> Result<Logs> {
        Ok(Logs {
            dir: Arc::new(
                tempfile::Builder::new()
                    .prefix("kubeboot-doubles-")
                    .tempdir()?,
            ),
            files: Arc::default(),
        })
    }

    pub fn dump(&self) {
        for p in self.files.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            eprintln!("===== {} =====\n{text}", p.display());
        }
    }
}

/// Runs `body` within [`TEST_DEADLINE`], printing the doubles' logs on failure (or
/// always, with `KUBEBOOT_TEST_LOGS=1`).
pub async fn run_test<F, Fut>(body: F) -> Result<()>
where
    F: FnOnce(Logs) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let logs = Logs::new()?;
    let r = match tokio::time::timeout(TEST_DEADLINE, body(logs.clone())).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!("test not done within {TEST_DEADLINE:?}")),
    };
    if r.is_err() || std::env::var_os("KUBEBOOT_TEST_LOGS").is_some() {
        logs.dump();
    }
    r
}

/// A double running as a child process; killed on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn start(bin: &str, args: &[String], name: &str, logs: &Logs) -> Result<Proc> {
        Self::start_env(bin, args, &[], name, logs)
    }

    pub fn start_env(
        bin: &str,
        args: &[String],
        env: &[(&str, &str)],
        name: &str,
        logs: &Logs,
    ) -> Result<Proc> {
        let log = logs.dir.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        logs.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(log.clone());
        Ok(Proc { child, log })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Flags shared by both doubles: the harness kubeconfig, no health port, quick leases.
pub fn flags(h: &Harness, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        format!("--kubeconfig={}", h.kubeconfig.display()),
        "--secure-port=0".to_string(),
        "--leader-elect-lease-duration=3s".to_string(),
        "--leader-elect-renew-deadline=2s".to_string(),
        "--leader-elect-retry-period=250ms".to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Polls `f` every 100 ms until it returns `Ok`, or fails with its last error at `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => bail!("{what}: not within {limit:?}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Checks `f` every 100 ms for `span`; fails at its first error. For properties that
/// must hold over time ("nothing more happens"), not for waiting.
pub async fn holds<F, Fut>(what: &str, span: Duration, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let end = Instant::now() + span;
    while Instant::now() < end {
        f().await
            .with_context(|| format!("{what} stopped holding"))?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A free loopback port (bound and released).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A Node with labels, taints and a `Ready` condition.
pub fn node(name: &str, labels: Value, taints: Value, ready: bool) -> Result<Node> {
    let mut l = labels;
    l["kubernetes.io/hostname"] = json!(name);
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": l},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": "KubeletReady"}]}
    }))?)
}

pub async fn create_nodes(c: &kube::Client, nodes: Vec<Node>) -> Result<()> {
    let api: Api<Node> = Api::all(c.clone());
    for n in nodes {
        api.create(&PostParams::default(), &n).await?;
    }
    Ok(())
}

/// Active pods (not finished, not being deleted) matching a label selector.
pub async fn active_pods(c: &kube::Client, ns: &str, selector: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(c.clone(), ns);
    let list = api.list(&ListParams::default().labels(selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

pub fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

pub fn name_of(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// Stops the harness's api-server, runs `during` while it is down, then starts a new one
/// on the same port against the same etcd.
pub async fn restart_apiserver<Fut: Future<Output = Result<()>>>(
    h: &mut Harness,
    during: Fut,
) -> Result<()> {
    let tls = h.etcd.tls().context("etcd without TLS")?;
    let config = |port: u16| Config {
        etcd: EtcdConfig {
            servers: vec![h.etcd.endpoint()],
            cafile: Some(tls.ca_cert.clone()),
            certfile: Some(tls.client_cert.clone()),
            keyfile: Some(tls.client_key.clone()),
        },
        secure_port: port,
        bind_address: [127, 0, 0, 1].into(),
        tls_cert_file: Some(h.pki.server_cert.clone()),
        tls_private_key_file: Some(h.pki.server_key.clone()),
        client_ca_file: Some(h.pki.ca_cert.clone()),
        ..Config::default()
    };
    let port = h.server.addr().port();
    let placeholder = ApiServer::start(config(0)).await?;
    drop(std::mem::replace(&mut h.server, placeholder));
    during.await?;
    let fresh = eventually("rebinding the api-server port", STEP, || {
        ApiServer::start(config(port))
    })
    .await?;
    h.server = fresh;
    Ok(())
}
