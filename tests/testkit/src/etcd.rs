//! A real etcd per test, so the snapshot reader and the etcd source are checked against
//! what etcd itself writes rather than against what we believe it writes.
//!
//! Each [`Etcd`] gets free loopback ports, a temp dir for its data and certificates, and
//! is polled with `etcdctl endpoint health` against a deadline before `start` returns.
//! Dropping it kills the process and removes the temp dir.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long `start` waits for the member to report healthy.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How often the health probe is repeated while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Port races (another test binds the port we picked) are retried this many times.
const START_ATTEMPTS: usize = 3;

/// How to start etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// Directory holding `etcd` and `etcdctl`; `None` uses `$PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Serve https with client-certificate auth.
    pub tls: bool,
    /// `--max-request-bytes`, for tests that store values bigger than etcd's 1.5 MiB default.
    pub max_request_bytes: Option<u64>,
}

/// Paths of the PEM files a client needs to talk to a TLS etcd.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca_cert: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running etcd member. Drop kills it and removes its temp dir.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    /// The command line it was started with, to start it again on the same data dir.
    args: Vec<String>,
    bin_dir: Option<PathBuf>,
    endpoint: String,
    data_dir: PathBuf,
    log: PathBuf,
    tls: Option<EtcdTls>,
    // Last: dropped after the process is killed.
    tmp: tempfile::TempDir,
}

/// The etcd 3.5 binaries installed by `scripts/setup-tools`, if any.
pub fn etcd35_bin_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("KUBEBOOT_ETCD35_BIN_DIR")?);
    dir.join("etcd").is_file().then_some(dir)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn bin(dir: &Option<PathBuf>, name: &str) -> PathBuf {
    match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

impl Etcd {
    /// Starts a single-member etcd and waits until it is healthy.
    pub fn start(opts: EtcdOptions) -> Result<Etcd> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&opts) {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    fn start_once(opts: &EtcdOptions) -> Result<Etcd> {
        let tmp = tempfile::Builder::new()
            .prefix("kubeboot-etcd-")
            .tempdir()?;
        let data_dir = tmp.path().join("data");
        let log = tmp.path().join("etcd.log");
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let tls = if opts.tls {
            Some(write_certs(&tmp.path().join("tls"))?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");

        let mut args = vec![
            "--name=default".to_string(),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={endpoint}"),
            format!("--advertise-client-urls={endpoint}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
            "--initial-cluster-state=new".to_string(),
        ];
        if let Some(n) = opts.max_request_bytes {
            args.push(format!("--max-request-bytes={n}"));
        }
        if let Some(t) = &tls {
            let dir = t.ca_cert.parent().unwrap_or(tmp.path());
            args.push(format!("--cert-file={}", dir.join("server.crt").display()));
            args.push(format!("--key-file={}", dir.join("server.key").display()));
            args.push(format!("--trusted-ca-file={}", t.ca_cert.display()));
            args.push("--client-cert-auth".to_string());
        }
        let mut etcd = Etcd {
            child: None,
            args,
            bin_dir: opts.bin_dir.clone(),
            endpoint,
            data_dir,
            log,
            tls,
            tmp,
        };
        etcd.spawn()?;
        etcd.wait_healthy()?;
        Ok(etcd)
    }

    fn spawn(&mut self) -> Result<()> {
        let etcd_bin = bin(&self.bin_dir, "etcd");
        let out = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(&etcd_bin)
            .args(&self.args)
            .env_remove("ETCDCTL_API")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("spawning {}", etcd_bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts it again on its data dir and ports after `shutdown` or `kill` (a member
    /// that restarts, as a static pod's does), and waits until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("etcd at {} is still running", self.endpoint);
        }
        self.spawn()?;
        self.wait_healthy()
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "etcd exited with {status} before it was healthy:\n{}",
                    self.log_tail()
                );
            }
            let probe = self
                .etcdctl_cmd(&["--command-timeout=1s", "endpoint", "health"])
                .output();
            if let Ok(out) = probe
                && out.status.success()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "etcd at {} not healthy within {START_DEADLINE:?}:\n{}",
                    self.endpoint,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The last lines of etcd's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The client URL, `http://127.0.0.1:PORT` or `https://...`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// The `--data-dir`; `member/snap/db` is the raw bbolt file.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Client certificate paths when started with `tls: true`.
    pub fn tls(&self) -> Option<&EtcdTls> {
        self.tls.as_ref()
    }

    fn etcdctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin(&self.bin_dir, "etcdctl"));
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg("--dial-timeout=5s");
        if let Some(t) = &self.tls {
            cmd.arg(format!("--cacert={}", t.ca_cert.display()))
                .arg(format!("--cert={}", t.client_cert.display()))
                .arg(format!("--key={}", t.client_key.display()));
        }
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs etcdctl (v3 API) against this member; fails with its stderr if it fails.
    pub fn etcdctl(&self, args: &[&str]) -> Result<Output> {
        let out = self
            .etcdctl_cmd(args)
            .output()
            .with_context(|| format!("running etcdctl {args:?}"))?;
        if !out.status.success() {
            bail!(
                "etcdctl {args:?} against {} failed ({}): {}",
                self.endpoint,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out)
    }

    /// `etcdctl snapshot save PATH`: a snapshot with the sha256 trailer.
    pub fn snapshot_save(&self, path: &Path) -> Result<()> {
        let path = path.to_str().context("snapshot path is not UTF-8")?;
        self.etcdctl(&["--command-timeout=60s", "snapshot", "save", path])?;
        Ok(())
    }

    /// An etcd-client connected to this member (with the client certificate under TLS).
    pub async fn client(&self) -> Result<etcd_client::Client> {
        let mut opts = etcd_client::ConnectOptions::new();
        if let Some(t) = &self.tls {
            let ca = std::fs::read(&t.ca_cert)?;
            let cert = std::fs::read(&t.client_cert)?;
            let key = std::fs::read(&t.client_key)?;
            opts = opts.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(ca))
                    .identity(etcd_client::Identity::from_pem(cert, key)),
            );
        }
        etcd_client::Client::connect([self.endpoint.as_str()], Some(opts))
            .await
            .with_context(|| format!("connecting to {}", self.endpoint))
    }

    /// Kills the process (SIGKILL, no clean shutdown) and keeps the data dir until drop,
    /// so a test can read what a crashed member left behind.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: kill only errors for a reaped child.
            let _ = child.kill();
            child.wait().context("waiting for killed etcd")?;
        }
        Ok(())
    }

    /// Clean shutdown (SIGTERM, so the backend is committed), keeping the data dir until
    /// drop; falls back to SIGKILL after a deadline.
    pub fn shutdown(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("running kill -TERM")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while status.success() && Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                self.child = None;
                return Ok(());
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        self.kill()?;
        bail!("etcd did not exit within 15s of SIGTERM; killed it");
    }

    /// The disaster: kills etcd and removes its data dir.
    pub fn stop(self) {
        drop(self);
    }

    /// The temp dir holding data, certificates and log.
    pub fn temp_dir(&self) -> &Path {
        self.tmp.path()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// A CA, a server cert for 127.0.0.1/localhost and a client cert, as PEM files in `dir`.
fn write_certs(dir: &Path) -> Result<EtcdTls> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    std::fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubeboot test etcd CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let issue = |sans: Vec<String>, cn: &str, usage: Vec<ExtendedKeyUsagePurpose>| {
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = usage;
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca)?;
        Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
    };
    let (server_crt, server_key) = issue(
        vec!["127.0.0.1".into(), "localhost".into()],
        "etcd",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )?;
    let (client_crt, client_key) = issue(
        vec![],
        "kubeboot-test",
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;

    let tls = EtcdTls {
        ca_cert: dir.join("ca.crt"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };
    std::fs::write(&tls.ca_cert, ca.pem())?;
    std::fs::write(dir.join("server.crt"), server_crt)?;
    std::fs::write(dir.join("server.key"), server_key)?;
    std::fs::write(&tls.client_cert, client_crt)?;
    std::fs::write(&tls.client_key, client_key)?;
    Ok(tls)
}
