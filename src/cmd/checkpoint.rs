//! `kubeboot checkpoint`: the pod checkpointer daemon. The operator gets a local,
//! static-pod copy of every annotated pod on this node (the self-hosted api-server, the
//! checkpointer itself) that the kubelet starts when the pod cannot run, so a master
//! rebooted with no api-server reachable still brings one up. See docs/checkpoint.md.
//!
//! Flags keep bootkube's names where it had them. They are checked with no file or
//! network access first ([`CheckpointArgs::resolve`]); only then is the kubeconfig
//! read (a missing or broken one is exit 2) and the lock waited for.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::SignedDuration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::{Exit, ExitWith, Failure, parse_duration, usage};
use crate::checkpoint::daemon::{self, Options};
use crate::checkpoint::files::Layout;
use crate::checkpoint::kubelet::Kubelet;
use crate::checkpoint::runtime::WhatRuns;
use crate::checkpoint::state::PodKey;
use crate::cri::Runtime;
use crate::kubeclient;

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Kubeconfig for the api-server; its credentials also go to the kubelet's secure port,
    /// once its serving certificate is verified.
    #[arg(
        long,
        default_value = "/etc/kubernetes/kubeconfig",
        value_name = "FILE"
    )]
    pub kubeconfig: PathBuf,
    /// This node's name, as the kubelet registers it (required).
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The checkpointer's own pod, when it runs as one; its static copy is `<pod>-<node>`.
    /// Without it (the systemd unit) there is no self checkpoint.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,
    /// The namespace of --pod-name.
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// The kubelet's static pod dir, where active checkpoints go.
    #[arg(long, default_value = "/etc/kubernetes/manifests", value_name = "DIR")]
    pub pod_manifest_path: PathBuf,
    /// Saved (inactive) checkpoints and their Secret, ConfigMap and token data.
    #[arg(
        long,
        default_value = "/etc/kubernetes/checkpoints",
        value_name = "DIR"
    )]
    pub checkpoint_dir: PathBuf,
    /// --checkpoint-dir as the kubelet sees it, when the checkpointer runs in another
    /// mount namespace that mounts it elsewhere [default: --checkpoint-dir].
    #[arg(long, value_name = "DIR")]
    pub host_checkpoint_dir: Option<String>,
    /// The node's IP, for the default kubelet URLs.
    #[arg(long, env = "HOST_IP", default_value = "127.0.0.1", value_name = "IP")]
    pub host_ip: String,
    /// The container runtime's CRI socket (`unix:///path` or `/path`), asked first for
    /// what runs here; empty turns it off.
    #[arg(long, default_value = crate::cri::DEFAULT_SOCKET, value_name = "ENDPOINT")]
    pub cri_socket: String,
    /// The kubelet's secure port (https), asked when the CRI socket does not answer,
    /// with the kubeconfig's credentials once its certificate is verified; empty turns it
    /// off [default: https://<host-ip>:10250].
    #[arg(long, value_name = "URL")]
    pub kubelet_url: Option<String>,
    /// The CA that signed the kubelet's serving certificate (PEM)
    /// [default: the kubeconfig's cluster CA].
    #[arg(long, value_name = "FILE")]
    pub kubelet_ca_file: Option<PathBuf>,
    /// The kubelet's read-only port (plain HTTP, no credentials, no proof of who
    /// answers), asked last; off unless given.
    #[arg(long, value_name = "URL")]
    pub kubelet_read_only_url: Option<String>,
    /// How long the api-server must say a parent is gone before its checkpoint is removed.
    #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub checkpoint_grace_period: Duration,
    /// How often a running parent is saved again, re-reading its Secrets and ConfigMaps.
    #[arg(long, default_value = "1m", value_parser = parse_duration, value_name = "DURATION")]
    pub refresh_period: Duration,
    /// Time between cycles.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Held for life: of the checkpointers on a node only the holder works, the others wait.
    #[arg(
        long,
        default_value = "/run/kubeboot/checkpointer.lock",
        value_name = "FILE"
    )]
    pub lock_file: PathBuf,
    /// Namespaces whose annotated pods are checkpointed; `*` for every namespace. A
    /// checkpoint runs as a static pod, past admission, with its data on the host.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kube-system",
        value_name = "NS,..."
    )]
    pub checkpoint_namespaces: Vec<String>,
    /// How long the api-server may refuse the kubeconfig's credential with 401
    /// Unauthorized (an expired or revoked token) before this checkpointer releases its
    /// lock to a standby and exits 1, to be restarted with a fresh credential; 0: never.
    #[arg(long, default_value = "2m", value_parser = parse_duration, value_name = "DURATION")]
    pub unauthorized_timeout: Duration,
    /// How long one api-server or kubelet request may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
}

/// The checked flags.
#[derive(Debug)]
pub struct Resolved {
    pub kubeconfig: PathBuf,
    /// The CRI socket's path; `None`: off.
    pub cri_socket: Option<PathBuf>,
    pub kubelet_url: Option<String>,
    pub kubelet_ca_file: Option<PathBuf>,
    pub kubelet_read_only_url: Option<String>,
    pub request_timeout: Duration,
    pub options: Options,
}

fn signed(d: Duration, flag: &str) -> Result<SignedDuration, Failure> {
    SignedDuration::try_from(d).map_err(|e| usage(format!("{flag}: {e}")))
}

/// A kubelet URL flag: `None` → the default (`None`: off), empty → off.
fn kubelet_url(
    flag: &str,
    value: Option<&str>,
    default: Option<String>,
    schemes: &[&str],
) -> Result<Option<String>, Failure> {
    let url = match (value, default) {
        (Some(""), _) | (None, None) => return Ok(None),
        (Some(u), _) => u.to_string(),
        (None, Some(d)) => d,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| usage(format!("{flag} {url:?}: {e}")))?;
    let scheme_ok = uri.scheme_str().is_some_and(|s| schemes.contains(&s));
    if !scheme_ok || uri.authority().is_none() {
        let want: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        return Err(usage(format!(
            "{flag} {url:?} is not a {} URL with a host",
            want.join(" or ")
        )));
    }
    Ok(Some(url))
}

impl CheckpointArgs {
    /// Checks the flags; touches no file and no network.
    pub fn resolve(self) -> Result<Resolved, Failure> {
        let node = self
            .node_name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| usage("--node-name (or NODE_NAME) is required"))?;
        let pod_name = self.pod_name.filter(|n| !n.is_empty());
        let pod_namespace = self.pod_namespace.filter(|n| !n.is_empty());
        let self_key = match (pod_name, &pod_namespace) {
            (Some(name), Some(ns)) => {
                let parent = name
                    .strip_suffix(&format!("-{node}"))
                    .filter(|p| !p.is_empty())
                    .unwrap_or(&name);
                Some(PodKey::new(ns.clone(), parent))
            }
            (None, None) | (None, Some(_)) => None,
            (Some(_), None) => {
                return Err(usage(
                    "--pod-name (POD_NAME) needs --pod-namespace (POD_NAMESPACE)",
                ));
            }
        };
        let host_dir = match self.host_checkpoint_dir {
            Some(d) => d,
            None => self.checkpoint_dir.to_string_lossy().into_owned(),
        };
        let host_dir = host_dir.trim_end_matches('/').to_string();
        let normalized = host_dir
            .split('/')
            .skip(1)
            .all(|p| !p.is_empty() && p != "." && p != "..");
        if !host_dir.starts_with('/') || !normalized {
            return Err(usage(format!(
                "the checkpoint dir as the kubelet sees it must be an absolute, normalized path other than /, not {host_dir:?} (set --host-checkpoint-dir)"
            )));
        }
        let ip: IpAddr = self
            .host_ip
            .parse()
            .map_err(|e| usage(format!("--host-ip {:?}: {e}", self.host_ip)))?;
        let host = match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        // Credentials go only over https (see checkpoint/kubelet.rs).
        let secure = kubelet_url(
            "--kubelet-url",
            self.kubelet_url.as_deref(),
            Some(format!("https://{host}:10250")),
            &["https"],
        )?;
        let read_only = kubelet_url(
            "--kubelet-read-only-url",
            self.kubelet_read_only_url.as_deref(),
            None,
            &["http", "https"],
        )?;
        let cri_socket = crate::cri::socket_flag(&self.cri_socket).map_err(usage)?;
        if cri_socket.is_none() && secure.is_none() && read_only.is_none() {
            return Err(usage(
                "--cri-socket, --kubelet-url and --kubelet-read-only-url are all off: the checkpointer cannot see what runs",
            ));
        }
        let kubelet_ca_file = self.kubelet_ca_file.filter(|p| !p.as_os_str().is_empty());
        for (flag, d) in [
            ("--interval", self.interval),
            ("--request-timeout", self.request_timeout),
            ("--refresh-period", self.refresh_period),
        ] {
            if d.is_zero() {
                return Err(usage(format!("{flag} must be more than 0")));
            }
        }
        Ok(Resolved {
            kubeconfig: self.kubeconfig,
            cri_socket,
            kubelet_url: secure,
            kubelet_ca_file,
            kubelet_read_only_url: read_only,
            request_timeout: self.request_timeout,
            options: Options {
                namespace: pod_namespace.unwrap_or_else(|| "kube-system".into()),
                node,
                self_key,
                layout: Layout {
                    active_dir: self.pod_manifest_path,
                    checkpoint_dir: self.checkpoint_dir,
                    host_checkpoint_dir: host_dir,
                },
                grace: signed(self.checkpoint_grace_period, "--checkpoint-grace-period")?,
                refresh: signed(self.refresh_period, "--refresh-period")?,
                interval: self.interval,
                lock_file: self.lock_file,
                namespaces: checkpoint_namespaces(&self.checkpoint_namespaces)?,
                unauthorized_timeout: self.unauthorized_timeout,
            },
        })
    }
}

/// `--checkpoint-namespaces`: names, or `*` alone for all (the empty set).
fn checkpoint_namespaces(given: &[String]) -> Result<BTreeSet<String>, Failure> {
    let names: BTreeSet<String> = given
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if names.contains("*") {
        return match names.len() {
            1 => Ok(BTreeSet::new()),
            _ => Err(usage("--checkpoint-namespaces: `*` stands alone")),
        };
    }
    if names.is_empty() {
        return Err(usage(
            "--checkpoint-namespaces: give at least one namespace (or `*`)",
        ));
    }
    Ok(names)
}

pub fn run(args: CheckpointArgs) -> Result<(), Failure> {
    let r = args.resolve()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_async(r))
}

async fn run_async(r: Resolved) -> Result<(), Failure> {
    let (client, endpoint) =
        kubeclient::from_kubeconfig(&r.kubeconfig, r.request_timeout, r.request_timeout)
            .await
            .exit_with(Exit::Usage)?;
    let kubelet = Kubelet::new(
        &r.kubeconfig,
        r.kubelet_url.as_deref(),
        r.kubelet_ca_file.as_deref(),
        r.kubelet_read_only_url.as_deref(),
        r.request_timeout,
    )
    .await
    .map_err(usage)?;
    let runs = WhatRuns {
        cri: r
            .cri_socket
            .as_deref()
            .map(|p| Runtime::new(p, r.request_timeout)),
        kubelet,
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            signals += 1;
            if signals == 1 {
                tracing::info!("stopping after this cycle (a second signal stops now)");
                let _ = tx.send(true);
            } else {
                tracing::warn!("second signal: stopping now");
                std::process::exit(Exit::Failed as i32);
            }
        }
    });
    let o = &r.options;
    tracing::info!(
        node = %o.node,
        api_server = %endpoint,
        own_pod = %o.self_key.as_ref().map_or("none".into(), ToString::to_string),
        checkpoint_dir = %o.layout.checkpoint_dir.display(),
        pod_manifest_path = %o.layout.active_dir.display(),
        cri_socket = %r.cri_socket.as_ref().map_or("off".into(), |p| p.display().to_string()),
        kubelet = %r.kubelet_url.as_deref().unwrap_or("off"),
        kubelet_read_only = %r.kubelet_read_only_url.as_deref().unwrap_or("off"),
        "kubeboot checkpoint starting"
    );
    daemon::run(r.options, client, runs, rx)
        .await
        .exit_with(Exit::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::path::Path;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CheckpointArgs,
    }

    fn resolve(args: &[&str]) -> Result<Resolved, Failure> {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        T::try_parse_from(argv).map_err(usage)?.a.resolve()
    }

    #[test]
    fn defaults_and_the_self_key() {
        let r = resolve(&[
            "--node-name=m1",
            "--pod-name=pod-checkpointer-x7k2p-m1",
            "--pod-namespace=kube-system",
            "--host-ip=10.0.0.5",
        ])
        .unwrap();
        assert_eq!(
            r.options.self_key,
            Some(PodKey::new("kube-system", "pod-checkpointer-x7k2p"))
        );
        assert_eq!(r.kubelet_url.as_deref(), Some("https://10.0.0.5:10250"));
        assert_eq!(
            r.kubelet_read_only_url, None,
            "the read-only port is off unless named"
        );
        assert_eq!(
            r.cri_socket.as_deref(),
            Some(Path::new("/run/containerd/containerd.sock"))
        );
        assert_eq!(r.kubelet_ca_file, None);
        assert_eq!(
            r.options.layout.host_checkpoint_dir,
            "/etc/kubernetes/checkpoints"
        );
        assert_eq!(r.options.grace, SignedDuration::from_secs(60));
        assert_eq!(r.options.interval, Duration::from_secs(5));
        let unit = resolve(&[
            "--node-name=m1",
            "--cri-socket=/var/run/crio/crio.sock",
            "--kubelet-read-only-url=http://127.0.0.1:10255",
        ])
        .unwrap();
        assert_eq!(unit.options.self_key, None);
        assert_eq!(
            unit.kubelet_read_only_url.as_deref(),
            Some("http://127.0.0.1:10255")
        );
        assert_eq!(
            unit.cri_socket.as_deref(),
            Some(Path::new("/var/run/crio/crio.sock"))
        );
        assert_eq!(unit.options.namespace, "kube-system");
        let v6 = resolve(&["--node-name=m1", "--host-ip=fd00::1"]).unwrap();
        assert_eq!(v6.kubelet_url.as_deref(), Some("https://[fd00::1]:10250"));
    }

    #[test]
    fn the_host_checkpoint_dir_defaults_to_the_checkpoint_dir() {
        let r = resolve(&[
            "--node-name=m1",
            "--checkpoint-dir=/nodes/m1/etc/kubernetes/checkpoints/",
        ])
        .unwrap();
        assert_eq!(
            r.options.layout.host_checkpoint_dir,
            "/nodes/m1/etc/kubernetes/checkpoints"
        );
        let r = resolve(&[
            "--node-name=m1",
            "--checkpoint-dir=/nodes/m1/etc/kubernetes/checkpoints",
            "--host-checkpoint-dir=/etc/kubernetes/checkpoints",
        ])
        .unwrap();
        assert_eq!(
            r.options.layout.host_checkpoint_dir,
            "/etc/kubernetes/checkpoints"
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for (args, needle) in [
            (vec![], "--node-name"),
            (vec!["--node-name="], "--node-name"),
            (vec!["--node-name=m", "--pod-name=p"], "--pod-namespace"),
            (vec!["--node-name=m", "--checkpoint-dir=rel"], "absolute"),
            (
                vec!["--node-name=m", "--host-checkpoint-dir=/a/../b"],
                "normalized",
            ),
            (vec!["--node-name=m", "--host-checkpoint-dir=/"], "absolute"),
            (vec!["--node-name=m", "--host-ip=nope"], "--host-ip"),
            (
                vec!["--node-name=m", "--kubelet-url=ftp://x"],
                "--kubelet-url",
            ),
            (
                vec!["--node-name=m", "--kubelet-url=http://127.0.0.1:10250"],
                "https://",
            ),
            (
                vec!["--node-name=m", "--cri-socket=tcp://x:1"],
                "--cri-socket",
            ),
            (
                vec![
                    "--node-name=m",
                    "--cri-socket=",
                    "--kubelet-url=",
                    "--kubelet-read-only-url=",
                ],
                "all off",
            ),
            (vec!["--node-name=m", "--interval=0s"], "--interval"),
        ] {
            let err = resolve(&args).expect_err(needle);
            assert_eq!(err.code, Exit::Usage, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }
}
