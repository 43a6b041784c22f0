//! `kubeboot start`: flags (bootkube's names and defaults where it had them), the lock,
//! signals, and the one-line summary. The steps are in `crate::start`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::SignedDuration;
use tokio::signal::unix::{SignalKind, signal};

use super::{Exit, Failure, parse_duration, usage};
use crate::start::observe::{Required, Rules};
use crate::start::progress::Progress;
use crate::start::{self, DEFAULT_REQUIRED, StartOptions};

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The asset dir written by `kubeboot recover` or `kubeboot render`.
    #[arg(long, value_name = "DIR")]
    pub asset_dir: PathBuf,
    /// Kubeconfig for reaching the api-server [default: <asset-dir>/auth/kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub flags: StartFlags,
    /// Only one `start` runs at a time on a node.
    #[arg(long, default_value = "/run/kubeboot/start.lock", value_name = "FILE")]
    pub lock_file: PathBuf,
}

// The flags of `start` that `ensure` passes on to the `start` it runs.
#[derive(Debug, Args)]
pub struct StartFlags {
    /// The kubelet's static pod dir.
    #[arg(long, default_value = "/etc/kubernetes/manifests", value_name = "DIR")]
    pub pod_manifest_path: PathBuf,
    /// Where the bootstrap pods find their Secrets, ConfigMaps and kubeconfig (the
    /// hostPath `recover`/`render` wrote into them).
    #[arg(
        long,
        default_value = "/etc/kubernetes/bootstrap-secrets",
        value_name = "DIR"
    )]
    pub bootstrap_secrets_dir: PathBuf,
    /// Self-hosted components that must be up, as NAMESPACE/NAME of their DaemonSet or
    /// Deployment.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_REQUIRED, value_name = "NS/NAME,...")]
    pub required_pods: Vec<String>,
    /// Deadline for the api-server, the objects and the self-hosted pods.
    #[arg(long, default_value = "20m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// How long each component may take to become Ready after its bootstrap pod is
    /// removed before the bootstrap pod is put back. The default must outlast the
    /// kubelet's crash-loop back-off: a self-hosted pod that crashed on its port just
    /// before the removal waits up to 300 s (`MaxCrashLoopBackOff`), then up to 15 s for
    /// the pod worker's next retry, then starts, passes its readiness probe (period
    /// 10 s) and has its status written; 8 m leaves about two minutes for that start-up
    /// after the longest back-off. At 5 m, a pivot about to succeed was rolled back.
    #[arg(long, default_value = "8m", value_parser = parse_duration, value_name = "DURATION")]
    pub pivot_timeout: Duration,
    /// How long one api-server request may take.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// How often to look again while waiting.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub poll_interval: Duration,
    /// A node counts as live when its kubelet reported within this time.
    #[arg(long, default_value = "40s", value_parser = parse_duration, value_name = "DURATION")]
    pub node_grace: Duration,
    /// How long a Ready status from before `start` must hold before it is trusted.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub status_settle: Duration,
    /// On failure before the pivot, remove the bootstrap pods instead of leaving them
    /// for inspection.
    #[arg(long)]
    pub cleanup_on_failure: bool,
    /// Host path of the self-hosted etcd's data dir, when restoring one
    /// [default: the one recorded in <asset-dir>/etcd/restore.json]. `ensure` reads it
    /// before restoring a backup over it [default there: /var/lib/etcd].
    #[arg(long, value_name = "DIR")]
    pub etcd_data_dir: Option<PathBuf>,
    /// How many revisions to move a restored etcd on by before compacting, so that
    /// clients holding newer resourceVersions relist (see docs/start.md).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub etcd_revision_bump: u64,
    /// How many earlier bootstrap secrets dirs (moved aside when a different one is
    /// installed; they hold keys), and earlier etcd data dirs (moved aside by a restore,
    /// once it holds; they hold every Secret), to keep; older ones are removed.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub keep_moved_aside: usize,
    /// This node's name as its kubelet registers it: a pivot counts only a self-hosted
    /// pod on this node, the one whose bootstrap pod was removed [default: the host
    /// name, the kubelet's own default].
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
}

/// The kubelet's default node name: the host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl StartFlags {
    /// `start`'s options for `asset_dir`.
    pub fn options(
        self,
        asset_dir: PathBuf,
        kubeconfig: Option<PathBuf>,
    ) -> Result<StartOptions, Failure> {
        let required = self
            .required_pods
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| Required::parse(s).map_err(|e| usage(format!("--required-pods: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let node_name = self
            .node_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(host_name);
        if node_name.is_empty() {
            return Err(usage("--node-name: no host name to default to"));
        }
        Ok(StartOptions {
            node_name,
            asset_dir,
            kubeconfig,
            pod_manifest_dir: self.pod_manifest_path,
            secrets_dir: self.bootstrap_secrets_dir,
            required,
            timeout: self.timeout,
            pivot_timeout: self.pivot_timeout,
            request_timeout: self.request_timeout,
            poll: self.poll_interval,
            cleanup_on_failure: self.cleanup_on_failure,
            rules: Rules {
                node_grace: signed(self.node_grace)?,
                settle: signed(self.status_settle)?,
            },
            etcd_data_dir: self.etcd_data_dir,
            etcd_revision_bump: self.etcd_revision_bump,
            keep_moved_aside: self.keep_moved_aside,
        })
    }
}

fn signed(d: Duration) -> Result<SignedDuration, Failure> {
    SignedDuration::try_from(d).map_err(|e| usage(format!("duration {d:?}: {e}")))
}

pub fn run(args: StartArgs) -> Result<(), Failure> {
    let opts = args.flags.options(args.asset_dir, args.kubeconfig)?;
    let _lock = super::take_lock(&args.lock_file, "start")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_async(&opts))
}

async fn run_async(opts: &StartOptions) -> Result<(), Failure> {
    let mut progress = Progress::new();
    let outcome = until_signal(start::run(opts, &mut progress)).await?;
    match outcome {
        Some(Ok(summary)) => {
            progress.phase("done");
            progress.step(&summary_line(&summary));
            Ok(())
        }
        Some(Err(e)) => Err(failure(e)),
        None => Err(interrupted(&progress, "kubeboot start")),
    }
}

/// Runs `work` until it ends (`Some`) or SIGTERM or SIGINT arrives (`None`): `start`
/// and `ensure` stop cleanly, leaving what runs running.
pub async fn until_signal<F: Future>(work: F) -> Result<Option<F::Output>, Failure> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        r = work => Some(r),
        _ = term.recv() => None,
        _ = int.recv() => None,
    })
}

/// Where things stand after a signal, and what to run to go on.
pub fn interrupted(progress: &Progress, again: &str) -> Failure {
    Failure {
        code: Exit::Failed,
        error: anyhow::anyhow!(
            "interrupted during: {}; everything installed so far was left running; run `{again}` again to continue",
            progress.current()
        ),
    }
}

/// The one-line summary of a successful start.
pub fn summary_line(summary: &start::Summary) -> String {
    let mut line = format!(
        "control plane up in {:.1} s: pivoted {}",
        summary.elapsed.as_secs_f64(),
        summary.pivoted.join(", ")
    );
    if !summary.others.is_empty() {
        line.push_str(&format!("; also up: {}", summary.others.join(", ")));
    }
    line
}

/// A bad asset dir is the operator's input (exit 2); anything else failed (exit 1).
pub fn failure(e: start::StartError) -> Failure {
    let code = if e.is_input() {
        Exit::Usage
    } else {
        Exit::Failed
    };
    Failure {
        code,
        error: anyhow::Error::new(e),
    }
}
