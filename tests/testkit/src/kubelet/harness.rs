//! The `fake-kubelet` binary as a test fixture: a temp manifest dir, root dir, root
//! filesystem and image map (or a node layout under `node_root`: `etc/kubernetes/manifests`
//! and `var/lib/kubelet` inside the node's `--root-fs`), free loopback ports (or the
//! kubelet's defaults on the node IP), `/healthz` polled against a deadline before `start` returns,
//! and a blocking `/pods` reader. The kubelet runs with the `KubeletConfiguration` file
//! defaults (`readOnlyPort: 0`, anonymous off, client certificates against a harness CA,
//! and with a kubeconfig webhook authentication and authorization against its
//! api-server; without one `AlwaysAllow`, since upstream refuses a webhook without a
//! client); `/pods` is read over HTTPS with the harness's client certificate
//! ([`super::harness_tls`]). Drop sends SIGTERM (the kubelet stops its pods), waits
//! a bounded time, then SIGKILLs; the pods' processes die with the kubelet either way.
//! The binary path comes from the caller (`env!("CARGO_BIN_EXE_fake-kubelet")`), which
//! only integration tests can name.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;

pub use super::harness_tls::Creds;

const START_DEADLINE: Duration = Duration::from_secs(20);
const STOP_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// How to start the kubelet.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    pub node_name: String,
    /// `(image pattern, executable)` lines of `--image-map`.
    pub image_map: Vec<(String, PathBuf)>,
    pub kubeconfig: Option<PathBuf>,
    pub node_labels: Option<String>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `--node-ip`; the kubelet ports bind it.
    pub node_ip: IpAddr,
    /// The node's filesystem (`--root-fs`); the manifest dir and root dir go under it as
    /// on a real node. `None`: a private temp dir.
    pub node_root: Option<PathBuf>,
    /// Serve on the kubelet's default ports (10248, 10250, 10255) instead of free ones.
    pub default_ports: bool,
    /// Serve the read-only port (off by default, as `readOnlyPort: 0`).
    pub read_only_port: bool,
    /// `--authorization-mode`; `None`: `Webhook` with a kubeconfig, else `AlwaysAllow`.
    pub authorization_mode: Option<String>,
    /// `--anonymous-auth`.
    pub anonymous_auth: bool,
    pub extra_args: Vec<String>,
}

impl Default for KubeletOptions {
    fn default() -> Self {
        KubeletOptions {
            node_name: "node1".into(),
            image_map: Vec::new(),
            kubeconfig: None,
            node_labels: None,
            // Upstream's crash-loop back-off: a test must survive the real one.
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            node_ip: IpAddr::from([127, 0, 0, 1]),
            node_root: None,
            default_ports: false,
            read_only_port: false,
            authorization_mode: None,
            anonymous_auth: false,
            extra_args: Vec::new(),
        }
    }
}

/// A running fake-kubelet. Drop stops it.
pub struct FakeKubelet {
    child: Option<Child>,
    pub manifest_dir: PathBuf,
    pub root_dir: PathBuf,
    /// The node's `--root-fs`: hostPath `P` is `root_fs/P`.
    pub root_fs: PathBuf,
    pub node_ip: IpAddr,
    pub healthz_port: u16,
    pub port: u16,
    pub read_only_port: u16,
    log: PathBuf,
    _tmp: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `GET http://127.0.0.1:port{path}` → (status code, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>)> {
    http_get_at(IpAddr::from([127, 0, 0, 1]), port, path)
}

/// `GET http://ip:port{path}` → (status code, body).
pub fn http_get_at(ip: IpAddr, port: u16, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_response(&buf)
}

/// A whole `Connection: close` HTTP/1.1 response → (status code, body).
pub fn parse_response(buf: &[u8]) -> Result<(u16, Vec<u8>)> {
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    let head = String::from_utf8_lossy(&buf[..split]);
    let code = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("bad status line")?;
    Ok((code, buf[split + 4..].to_vec()))
}

impl FakeKubelet {
    pub fn start(bin: impl AsRef<Path>, opts: KubeletOptions) -> Result<FakeKubelet> {
        let bin = bin.as_ref();
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(bin, &opts) {
                Ok(k) => return Ok(k),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("fake-kubelet did not start")))
    }

    fn start_once(bin: &Path, opts: &KubeletOptions) -> Result<FakeKubelet> {
        let tmp = tempfile::Builder::new()
            .prefix("kubeboot-kubelet-")
            .tempdir()?;
        let (root_fs, manifest_dir, root_dir) = match &opts.node_root {
            Some(n) => (
                n.clone(),
                n.join("etc/kubernetes/manifests"),
                n.join("var/lib/kubelet"),
            ),
            None => (
                tmp.path().join("rootfs"),
                tmp.path().join("manifests"),
                tmp.path().join("root"),
            ),
        };
        std::fs::create_dir_all(&manifest_dir)?;
        std::fs::create_dir_all(&root_fs)?;
        let map: String = opts
            .image_map
            .iter()
            .map(|(k, v)| format!("{}: {}\n", serde_json::json!(k), serde_json::json!(v)))
            .collect();
        let map_path = tmp.path().join("image-map.yaml");
        std::fs::write(&map_path, map)?;
        let (healthz_port, port, mut read_only_port) = if opts.default_ports {
            (10248, 10250, 10255)
        } else {
            (free_port()?, free_port()?, free_port()?)
        };
        if !opts.read_only_port {
            read_only_port = 0;
        }
        let pki = tmp.path().join("pki");
        std::fs::create_dir_all(&pki)?;
        super::harness_tls::write_kubelet_pki(&pki, &opts.node_name, opts.node_ip)?;
        let mode = opts.authorization_mode.clone().unwrap_or_else(|| {
            if opts.kubeconfig.is_some() {
                "Webhook"
            } else {
                "AlwaysAllow"
            }
            .to_string()
        });
        let log = tmp.path().join("kubelet.log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--pod-manifest-path={}", manifest_dir.display()))
            .arg(format!("--root-dir={}", root_dir.display()))
            .arg(format!("--root-fs={}", root_fs.display()))
            .arg(format!("--image-map={}", map_path.display()))
            .arg(format!("--hostname-override={}", opts.node_name))
            .arg(format!("--node-ip={}", opts.node_ip))
            .arg(format!("--healthz-port={healthz_port}"))
            .arg(format!("--port={port}"))
            .arg(format!("--read-only-port={read_only_port}"))
            .arg(format!(
                "--backoff-base={}ms",
                opts.backoff_base.as_millis()
            ))
            .arg(format!("--backoff-max={}ms", opts.backoff_max.as_millis()))
            .arg("--max-grace-period=5s")
            .arg(format!(
                "--tls-cert-file={}",
                pki.join("kubelet.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.join("kubelet.key").display()
            ))
            .arg(format!("--client-ca-file={}", pki.join("ca.crt").display()))
            .arg(format!("--anonymous-auth={}", opts.anonymous_auth))
            .arg(format!("--authorization-mode={mode}"));
        if let Some(k) = &opts.kubeconfig {
            cmd.arg(format!("--kubeconfig={}", k.display()))
                .arg("--authentication-token-webhook=true");
        }
        cmd.args(&opts.extra_args);
        if let Some(l) = &opts.node_labels {
            cmd.arg(format!("--node-labels={l}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let mut k = FakeKubelet {
            child: Some(child),
            manifest_dir,
            root_dir,
            root_fs,
            node_ip: opts.node_ip,
            healthz_port,
            port,
            read_only_port,
            log,
            _tmp: tmp,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(c) = k.child.as_mut()
                && let Some(st) = c.try_wait()?
            {
                bail!(
                    "fake-kubelet exited with {st} before /healthz answered:\n{}",
                    k.log_tail()
                );
            }
            if k.healthz() {
                return Ok(k);
            }
            if Instant::now() >= deadline {
                bail!(
                    "fake-kubelet /healthz not ok within {START_DEADLINE:?}:\n{}",
                    k.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn healthz(&self) -> bool {
        matches!(http_get_at(self.node_ip, self.healthz_port, "/healthz"), Ok((200, b)) if b == b"ok")
    }

    /// `GET` on 10250 (HTTPS, the kubelet's certificate verified) as `creds`.
    pub fn secure_get(&self, path: &str, creds: &Creds) -> Result<(u16, Vec<u8>)> {
        super::harness_tls::https_get(self.node_ip, self.port, path, creds)
    }

    /// The pods from `/pods` on `port`: 10250 with the harness's client certificate,
    /// the read-only port in plain HTTP.
    pub fn pods_on(&self, port: u16) -> Result<Vec<Pod>> {
        let (code, body) = if port == self.port {
            self.secure_get("/pods", &Creds::ClientCert)?
        } else {
            http_get_at(self.node_ip, port, "/pods")?
        };
        if code != 200 {
            bail!("/pods answered {code}");
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if v["kind"] != "PodList" {
            bail!("/pods is not a PodList: {v}");
        }
        Ok(serde_json::from_value(v["items"].clone())?)
    }

    pub fn pods(&self) -> Result<Vec<Pod>> {
        self.pods_on(self.port)
    }

    /// Polls `/pods` until `f` returns `Some`, or fails after `within` naming `what`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        mut f: impl FnMut(&[Pod]) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + within;
        let mut last = Vec::new();
        loop {
            if let Ok(pods) = self.pods() {
                if let Some(t) = f(&pods) {
                    return Ok(t);
                }
                last = pods;
            }
            if Instant::now() >= deadline {
                let pods = serde_json::to_string_pretty(&last).unwrap_or_default();
                bail!(
                    "timed out after {within:?} waiting for {what}; last /pods:\n{pods}\nkubelet log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL * 2);
        }
    }

    /// Writes a manifest into the static pod dir (atomically, like the checkpointer).
    pub fn write_manifest(&self, file: &str, text: &str) -> Result<()> {
        let tmp = self.manifest_dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.manifest_dir.join(file))?;
        Ok(())
    }

    /// `<root-dir>/pods/<ns>_<name>/<container>.log`.
    pub fn container_log(&self, ns: &str, pod: &str, container: &str) -> String {
        std::fs::read_to_string(
            self.root_dir
                .join("pods")
                .join(format!("{ns}_{pod}"))
                .join(format!("{container}.log")),
        )
        .unwrap_or_default()
    }

    /// SIGTERM, then wait up to `within`; SIGKILL if it does not exit.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        super::process::signal_pid(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let st = child.wait()?;
        bail!("fake-kubelet ignored SIGTERM for {within:?} (killed: {st})")
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.terminate(STOP_DEADLINE);
        }
    }
}

/// True while a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The pid of a running container, from its status's `containerID` (the double's ids
/// end in the pid: [`super::status::run_id`]).
pub fn container_pid(pod: &Pod, container: &str) -> Option<u32> {
    let st = pod.status.as_ref()?.container_statuses.as_ref()?;
    let id = st
        .iter()
        .find(|c| c.name == container)?
        .container_id
        .as_deref()?
        .strip_prefix(super::status::RUNTIME)?
        .strip_prefix("://")?;
    let pid = id.get(id.len().checked_sub(16)?..)?;
    u32::try_from(u64::from_str_radix(pid, 16).ok()?).ok()
}
