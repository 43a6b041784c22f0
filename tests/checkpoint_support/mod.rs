//! Helpers for the checkpointer's integration tests: the fake-kubelet binary, polling
//! against a deadline, the kubelet's pod list, and `kubeboot checkpoint` as a child
//! process stopped with SIGTERM.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::kubelet::harness::{FakeKubelet, KubeletOptions, http_get};

pub const WAIT: Duration = Duration::from_secs(60);
const SIGTERM: i32 = 15;

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o7777)
}

/// The fake-kubelet binary, built beside `kubeboot` when missing (`cargo test -p
/// kubeboot` does not build a dev-dependency's binaries; the workspace test run does).
pub fn fake_kubelet() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_kubeboot"))
        .parent()
        .unwrap()
        .join("fake-kubelet");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "kubeboot-testkit", "--bin", "fake-kubelet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success() && bin.is_file(),
            "building fake-kubelet failed"
        );
    }
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 100 ms until it returns `Some`, or fails naming `what`.
pub async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("timed out after {WAIT:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pods on the kubelet's read-only port.
pub fn kubelet_pods(port: u16) -> Vec<Pod> {
    let Ok((200, body)) = http_get(port, "/pods") else {
        return Vec::new();
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::from_value(v["items"].clone()).ok())
        .unwrap_or_default()
}

pub fn running(pods: &[Pod], name: &str) -> bool {
    pods.iter().any(|p| {
        p.metadata.name.as_deref() == Some(name)
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    })
}

/// `kubeboot checkpoint`, stopped with SIGTERM on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the exit code.
    pub fn stop(&mut self) -> Result<Option<i32>> {
        let mut child = self.child.take().context("already stopped")?;
        kubeboot_testkit::kubelet::process::signal_pid(child.id(), SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st.code());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("kubeboot checkpoint ignored SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The harness api-server's client, as its admin.
pub async fn admin_client(h: &Harness) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(&h.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A node's root dir under `work` (its `var/run` made), and the CRI socket the fake
/// kubelet serves there, where a containerd node has it.
pub fn node_root(work: &Path) -> Result<(PathBuf, PathBuf)> {
    let root = work.join("node1");
    std::fs::create_dir_all(root.join("var/run"))?;
    let cri = root.join("var/run/containerd/containerd.sock");
    Ok((root, cri))
}

/// Starts a fake kubelet off the async runtime (its start blocks until it serves).
pub async fn start_kubelet(bin: &Path, opts: KubeletOptions) -> Result<FakeKubelet> {
    let bin = bin.to_path_buf();
    tokio::task::spawn_blocking(move || FakeKubelet::start(bin, opts)).await?
}
