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
    /// removed before the bootstrap pod is put back.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
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
    /// [default: the one recorded in <asset-dir>/etcd/restore.json].
    #[arg(long, value_name = "DIR")]
    pub etcd_data_dir: Option<PathBuf>,
    /// How many revisions to move a restored etcd on by before compacting, so that
    /// clients holding newer resourceVersions relist (see docs/start.md).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub etcd_revision_bump: u64,
    /// Only one `start` runs at a time on a node.
    #[arg(long, default_value = "/run/kubeboot/start.lock", value_name = "FILE")]
    pub lock_file: PathBuf,
}

fn signed(d: Duration) -> Result<SignedDuration, Failure> {
    SignedDuration::try_from(d).map_err(|e| usage(format!("duration {d:?}: {e}")))
}

pub fn run(args: StartArgs) -> Result<(), Failure> {
    let required = args
        .required_pods
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| Required::parse(s).map_err(|e| usage(format!("--required-pods: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = StartOptions {
        asset_dir: args.asset_dir,
        kubeconfig: args.kubeconfig,
        pod_manifest_dir: args.pod_manifest_path,
        secrets_dir: args.bootstrap_secrets_dir,
        required,
        timeout: args.timeout,
        pivot_timeout: args.pivot_timeout,
        request_timeout: args.request_timeout,
        poll: args.poll_interval,
        cleanup_on_failure: args.cleanup_on_failure,
        rules: Rules {
            node_grace: signed(args.node_grace)?,
            settle: signed(args.status_settle)?,
        },
        etcd_data_dir: args.etcd_data_dir,
        etcd_revision_bump: args.etcd_revision_bump,
    };
    let _lock = super::take_lock(&args.lock_file, "start")?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run_async(&opts))
}

async fn run_async(opts: &StartOptions) -> Result<(), Failure> {
    let mut progress = Progress::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let outcome = {
        let work = start::run(opts, &mut progress);
        tokio::select! {
            r = work => Some(r),
            _ = term.recv() => None,
            _ = int.recv() => None,
        }
    };
    match outcome {
        Some(Ok(summary)) => {
            let mut line = format!(
                "control plane up in {:.1} s: pivoted {}",
                summary.elapsed.as_secs_f64(),
                summary.pivoted.join(", ")
            );
            if !summary.others.is_empty() {
                line.push_str(&format!("; also up: {}", summary.others.join(", ")));
            }
            progress.step(&line);
            Ok(())
        }
        Some(Err(e)) => {
            let code = if e.is_input() {
                Exit::Usage
            } else {
                Exit::Failed
            };
            Err(Failure {
                code,
                error: anyhow::Error::new(e),
            })
        }
        None => Err(Failure {
            code: Exit::Failed,
            error: anyhow::anyhow!(
                "interrupted during: {}; everything installed so far was left running; run `kubeboot start` again to continue",
                progress.current()
            ),
        }),
    }
}
