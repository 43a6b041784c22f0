//! The `fake-apiserver` binary starts with a kube-apiserver command line (unknown flags
//! are logged and ignored) and serves `/readyz` once etcd answers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kubeboot_testkit::apiserver::harness::{https_request, write_pki};
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

const DEADLINE: Duration = Duration::from_secs(30);

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_kube_apiserver_flags() -> Result<()> {
    tokio::time::timeout(2 * DEADLINE, run()).await?
}

async fn run() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(|| {
        Etcd::start(EtcdOptions {
            tls: true,
            ..Default::default()
        })
    })
    .await??;
    let tls = etcd.tls().context("etcd TLS")?;
    let dir = tempfile::tempdir()?;
    let pki = write_pki(dir.path())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let arg = |name: &str, p: &std::path::Path| format!("--{name}={}", p.display());
    let log = std::fs::File::create(dir.path().join("log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_fake-apiserver"))
        .arg("--advertise-address=127.0.0.1")
        .arg("--allow-privileged=true")
        .arg("--authorization-mode=Node,RBAC")
        .arg(format!("--etcd-servers={}", etcd.endpoint()))
        .arg(arg("etcd-cafile", &tls.ca_cert))
        .arg(arg("etcd-certfile", &tls.client_cert))
        .arg(arg("etcd-keyfile", &tls.client_key))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"))
        .arg(arg("client-ca-file", &pki.ca_cert))
        .arg(arg("tls-cert-file", &pki.server_cert))
        .arg(arg("tls-private-key-file", &pki.server_key))
        .arg(arg("service-account-key-file", &pki.ca_cert))
        .args(["--service-cluster-ip-range", "10.96.0.0/12"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let _child = KillOnDrop(child);
    let url = format!("https://127.0.0.1:{port}");
    let id = Some((pki.admin_cert.as_path(), pki.admin_key.as_path()));
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok((200, body)) = https_request(&url, &pki.ca_cert, id, "GET", "/readyz", None).await
        {
            assert_eq!(body, "ok");
            break;
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(dir.path().join("log"))?;
            bail!("fake-apiserver not ready within {DEADLINE:?}:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, body) = https_request(
        &url,
        &pki.ca_cert,
        id,
        "GET",
        "/api/v1/namespaces/kube-system",
        None,
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let log = std::fs::read_to_string(dir.path().join("log"))?;
    // --authorization-mode is understood now, no longer ignored.
    assert!(!log.contains("--authorization-mode"), "{log}");
    assert!(
        log.contains("--service-cluster-ip-range=10.96.0.0/12"),
        "{log}"
    );
    Ok(())
}
