//! The fake api-server checked with the real kubectl (1.32): where they disagree, the
//! double is wrong. One harness (TLS etcd + server) serves the whole flow to keep the
//! test quick; every kubectl run and the watch are bounded by deadlines.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::apiserver::kubectl::{COMMAND_DEADLINE, KUBECTL};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const TEST_DEADLINE: Duration = Duration::from_secs(180);

const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      containers:
      - name: coredns
        image: registry.k8s.io/coredns/coredns:v1.11.1
        args: ["-conf", "/etc/coredns/Corefile"]
        ports: [{containerPort: 53, name: dns, protocol: UDP}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers: [{name: c, image: busybox}]
"#;

async fn kubectl(h: &Harness, args: &[&str]) -> Result<String> {
    kubeboot_testkit::apiserver::kubectl::run(h, args).await
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_writes_and_watches() -> Result<()> {
    if !Path::new(KUBECTL).exists() {
        println!("SKIPPED: {KUBECTL} is not installed");
        return Ok(());
    }
    tokio::time::timeout(TEST_DEADLINE, flow()).await?
}

async fn flow() -> Result<()> {
    let h = Harness::start().await?;
    assert_eq!(
        kubectl(&h, &["get", "--raw", "/readyz"]).await?.trim(),
        "ok"
    );

    let file = h.dir.path().join("objects.yaml");
    std::fs::write(&file, MANIFESTS)?;
    let file = file.to_str().context("path")?;
    let created = kubectl(&h, &["create", "-f", file]).await?;
    assert!(
        created.contains("deployment.apps/coredns created"),
        "{created}"
    );
    assert!(created.contains("pod/web created"), "{created}");

    let pods = kubectl(&h, &["get", "pods", "-A"]).await?;
    assert!(
        pods.lines()
            .any(|l| l.starts_with("default") && l.contains("web")),
        "{pods}"
    );
    let short = kubectl(
        &h,
        &[
            "get",
            "po",
            "-n",
            "default",
            "-l",
            "app in (web)",
            "-o",
            "name",
        ],
    )
    .await?;
    assert_eq!(short.trim(), "pod/web");

    let deploys = json(&kubectl(&h, &["get", "deploy", "-n", "kube-system", "-o", "json"]).await?)?;
    let d = &deploys["items"][0];
    assert_eq!(d["metadata"]["name"], "coredns");
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );

    // apply: a strategic merge patch that changes replicas and keeps the container.
    std::fs::write(file, MANIFESTS.replace("replicas: 2", "replicas: 3"))?;
    let applied = kubectl(&h, &["apply", "-f", file]).await?;
    assert!(
        applied.contains("deployment.apps/coredns configured"),
        "{applied}"
    );
    let d = json(
        &kubectl(
            &h,
            &[
                "get",
                "deploy",
                "coredns",
                "-n",
                "kube-system",
                "-o",
                "json",
            ],
        )
        .await?,
    )?;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "-conf"
    );
    let again = kubectl(&h, &["apply", "-f", file]).await?;
    assert!(
        again.contains("deployment.apps/coredns unchanged"),
        "{again}"
    );

    watch_sees_events(&h).await?;

    let deleted = kubectl(&h, &["delete", "pod", "web", "-n", "default"]).await?;
    assert!(deleted.contains("pod \"web\" deleted"), "{deleted}");
    let gone = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&h.kubeconfig)
        .args(["get", "pod", "web", "-n", "default"])
        .output()
        .await?;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("(NotFound)"));
    Ok(())
}

/// `kubectl get -w` in the background sees the existing pod, then a change to it.
async fn watch_sees_events(h: &Harness) -> Result<()> {
    let mut child = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&h.kubeconfig)
        .args([
            "get",
            "pods",
            "-n",
            "default",
            "-w",
            "--output-watch-events",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut seen = Vec::new();
    let result = tokio::time::timeout(COMMAND_DEADLINE, async {
        let mut labelled = false;
        while let Some(line) = lines.next_line().await? {
            seen.push(line.clone());
            if line.contains("ADDED") && line.contains("web") && !labelled {
                kubectl(h, &["label", "pod", "web", "-n", "default", "watched=yes"]).await?;
                labelled = true;
            }
            if line.contains("MODIFIED") && line.contains("web") {
                return anyhow::Ok(());
            }
        }
        bail!("kubectl get -w ended early")
    })
    .await;
    child.kill().await.ok();
    match result {
        Ok(r) => r.with_context(|| format!("watch output: {seen:?}")),
        Err(_) => bail!("no ADDED+MODIFIED from kubectl get -w in time: {seen:?}"),
    }
}
