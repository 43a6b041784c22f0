//! The checkpointer gives up its lock on a persistent 401 (docs/checkpoint.md, "How
//! long a checkpoint runs on an expired token"). After an outage longer than its token's
//! life, the checkpointer's own checkpoint meets a returning api-server that answers
//! its expired Node-bound token with 401, as upstream does (`pkg/serviceaccount/claims.go`,
//! `Validate`: "service account token has expired"). It must not keep the lock: it
//! releases it and exits 1, and the standby with a valid credential (here the systemd
//! unit's admin kubeconfig) takes over and works.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use kubeboot_testkit::apiserver::harness::{Harness, SA_ISSUER, bearer_request};
use kubeboot_testkit::apiserver::jwt;
use serde_json::json;

mod checkpoint_support;

use checkpoint_support::{Daemon, until};

const TEST_DEADLINE: Duration = Duration::from_secs(180);

/// A kubeconfig reaching the harness with a bearer token.
fn token_kubeconfig(path: &Path, h: &Harness, token: &str) -> Result<PathBuf> {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
            h.server.url(),
            h.pki.ca_cert.display()
        ),
    )?;
    Ok(path.to_path_buf())
}

/// `kubeboot checkpoint` as the systemd unit would run it (no own pod), seeing what runs
/// through a CRI socket that is not there: each cycle still lists the API's pods.
fn checkpointer(dir: &Path, name: &str, kubeconfig: &Path, lock: &Path) -> Result<Daemon> {
    let log = dir.join(format!("{name}.log"));
    let child: Child = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .arg("checkpoint")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg("--node-name=node1")
        .arg(format!(
            "--pod-manifest-path={}",
            dir.join("manifests").display()
        ))
        .arg(format!(
            "--checkpoint-dir={}",
            dir.join("checkpoints").display()
        ))
        .arg(format!(
            "--cri-socket=unix://{}",
            dir.join("no-runtime.sock").display()
        ))
        .arg("--kubelet-url=")
        .arg(format!("--lock-file={}", lock.display()))
        .args([
            "--interval=200ms",
            "--request-timeout=2s",
            "--unauthorized-timeout=3s",
        ])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    Ok(Daemon {
        child: Some(child),
        log,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpointer_refused_with_401_gives_its_lock_to_a_standby() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, handover())
        .await
        .context("test deadline")?
}

async fn handover() -> Result<()> {
    let h = Harness::start().await?;
    let kc = kube::config::Kubeconfig::read_from(&h.kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let pp = PostParams::default();
    let sa: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": "pod-checkpointer", "namespace": "kube-system"}}),
    )?;
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), "kube-system")
        .create(&pp, &sa)
        .await?;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node1"}}))?;
    let node = Api::<Node>::all(client.clone()).create(&pp, &node).await?;

    // The token a checkpoint saved before the outage: bound to the Node, an hour long,
    // and an hour past its `exp` by now.
    let now = jiff::Timestamp::now().as_second();
    let key = jwt::SigningKey::from_file(&h.pki.sa_key)?;
    let claims = |iat: i64| {
        json!({
            "aud": [SA_ISSUER], "iss": SA_ISSUER, "iat": iat, "nbf": iat, "exp": iat + 3600,
            "jti": "j1", "sub": "system:serviceaccount:kube-system:pod-checkpointer",
            "kubernetes.io": {"namespace": "kube-system",
                "serviceaccount": {"name": "pod-checkpointer", "uid": sa.metadata.uid},
                "node": {"name": "node1", "uid": node.metadata.uid}}
        })
    };
    let expired = key.sign(&claims(now - 7200))?;
    let fresh = key.sign(&claims(now))?;
    let url = h.server.url();
    let code = |t: String| {
        let (url, ca) = (url.clone(), h.pki.ca_cert.clone());
        async move {
            bearer_request(&url, &ca, &t, "GET", "/api/v1/pods", None)
                .await
                .map(|r| r.0)
        }
    };
    assert_eq!(code(expired.clone()).await?, 401, "the expired token");
    assert_ne!(code(fresh).await?, 401, "the same token, not expired");

    let work = tempfile::tempdir()?;
    let lock = work.path().join("run/kubeboot/checkpointer.lock");
    let stale = token_kubeconfig(&work.path().join("stale-kubeconfig"), &h, &expired)?;
    let mut refused = checkpointer(work.path(), "refused", &stale, &lock)?;
    until("the refused checkpointer holding the lock", || {
        refused.log().contains("first cycle done").then_some(())
    })
    .await
    .with_context(|| refused.log())?;
    let mut standby = checkpointer(work.path(), "standby", &h.kubeconfig, &lock)?;
    until("the second checkpointer in standby", || {
        standby.log().contains("standby").then_some(())
    })
    .await
    .with_context(|| standby.log())?;

    // The refused one gives up (3 s of 401s, three polls at least) and exits 1 ...
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let child = refused.child.as_mut().context("child")?;
        if let Some(st) = child.try_wait()? {
            refused.child = None;
            break st;
        }
        if Instant::now() > deadline {
            bail!("the refused checkpointer kept its lock:\n{}", refused.log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let said = refused.log();
    assert_eq!(status.code(), Some(1), "{said}");
    let line: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("401 Unauthorized") && l.contains("releasing the lock"))
        .collect();
    assert_eq!(line.len(), 1, "one clear line: {said}");
    assert!(line[0].contains(&lock.display().to_string()), "{said}");
    assert!(!said.contains(&expired), "the token is never logged");

    // ... and the standby with a valid credential takes the lock and works.
    until("the standby taking over", || {
        let l = standby.log();
        (l.contains("took over the lock") && l.contains("first cycle done")).then_some(())
    })
    .await
    .with_context(|| standby.log())?;
    let l = standby.log();
    assert!(l.contains("api-server up"), "{l}");
    assert_eq!(standby.stop()?, Some(0), "{}", standby.log());
    Ok(())
}
