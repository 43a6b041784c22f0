//! `kubeboot ensure`: flags, the lock it shares with `start` (one recovery at a time
//! on a node), signals, and exit codes for [`crate::ensure`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::etcd_flags::EtcdFlags;
use super::start::{StartFlags, interrupted, summary_line, until_signal};
use super::{Exit, ExitWith, Failure, Format, OutputFlag, parse_duration, usage};
use crate::backup::crypt::Identity;
use crate::backup::fetch;
use crate::encryption::EncryptionConfig;
use crate::ensure::decide::{Decision, Policy, Via};
use crate::ensure::{self, EnsureError, Outcome};
use crate::render::RenderOptions;
use crate::start::Summary;
use crate::start::progress::Progress;
use crate::systemd::logfields::Fields;

/// What `ensure -o json|yaml` prints after a real run that succeeded (docs/cli.md); a
/// run that fails prints nothing on stdout, only its error line and exit status.
#[derive(Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// `healthy` (nothing done) or `recovered`.
    pub outcome: &'static str,
    /// `apiserver`, `etcd`, `backup` or `local`; absent when healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// The source in words (a backup by its path or URL and revision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset_dir: Option<String>,
    /// Components pivoted to their self-hosted pods, and those up without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pivoted: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub others: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl RunReport {
    pub fn healthy() -> RunReport {
        RunReport {
            outcome: "healthy",
            via: None,
            source: None,
            asset_dir: None,
            pivoted: None,
            others: None,
            seconds: None,
        }
    }

    pub fn recovered(via: &Via, asset_dir: &std::path::Path, summary: &Summary) -> RunReport {
        RunReport {
            outcome: "recovered",
            via: Some(via.word()),
            source: Some(describe(via)),
            asset_dir: Some(asset_dir.display().to_string()),
            pivoted: Some(summary.pivoted.clone()),
            others: Some(summary.others.clone()),
            seconds: Some((summary.elapsed.as_secs_f64() * 10.0).round() / 10.0),
        }
    }
}

#[derive(Debug, Args)]
pub struct EnsureArgs {
    /// Reaches the api-server (health and the api-server source); copied into the
    /// recovered asset dir for the bootstrap control plane.
    #[arg(
        long,
        default_value = "/etc/kubernetes/kubeconfig",
        value_name = "FILE"
    )]
    pub kubeconfig: PathBuf,
    /// The kubelet's health endpoint (its --healthz-port).
    #[arg(
        long,
        default_value = "http://127.0.0.1:10248/healthz",
        value_name = "URL"
    )]
    pub kubelet_healthz_url: String,
    /// The kubelet's systemd unit, asked about over D-Bus when its healthz fails
    /// (empty: do not ask systemd).
    #[arg(long, default_value = "kubelet.service", value_name = "UNIT")]
    pub kubelet_unit: String,
    /// systemd's D-Bus address [default: the system bus].
    #[arg(long, value_name = "ADDRESS")]
    pub systemd_bus_address: Option<String>,
    /// The container runtime's CRI socket (`unix:///path` or `/path`): a Ready status
    /// naming the containers it runs now is believed at once, instead of after
    /// --status-settle; empty turns it off.
    #[arg(long, default_value = crate::cri::DEFAULT_SOCKET, value_name = "ENDPOINT")]
    pub cri_socket: String,
    #[command(flatten)]
    pub etcd: EtcdFlags,
    #[command(flatten)]
    pub host_etcd: super::host_etcd_flags::HostEtcdFlags,
    /// The api-server's EncryptionConfiguration, for the etcd and backup sources.
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// Where `kubeboot backup` keeps its backups.
    #[arg(long, default_value = "/var/lib/kubeboot/backups", value_name = "DIR")]
    pub backup_dir: PathBuf,
    /// The object store `kubeboot backup --remote` copies backups to (s3://bucket/prefix,
    /// gs://bucket/prefix, az://container/prefix, file:///dir). With --allow-remote-backup, when no backup in --backup-dir is
    /// whole, the newest whole one there is downloaded, checked, and restored as a
    /// local one would be (policy still decides whether this node may).
    #[arg(long, value_name = "URL")]
    pub backup_remote: Option<String>,
    /// Fall back to --backup-remote when no local backup is whole (off by default).
    #[arg(long, requires = "backup_remote")]
    pub allow_remote_backup: bool,
    #[command(flatten)]
    pub remote: super::remote_read::RemoteRead,
    /// An age identity file (`age-keygen`'s output) that opens encrypted backups
    /// (`backup.tar.age`). Without it an encrypted newest backup stops the fall-back
    /// (exit 3) rather than being passed over for an older plain one.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// How long the control plane may take to come up by itself before it is
    /// recovered.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub boot_grace: Duration,
    /// Allow restoring a backup, or starting the local etcd data dir, on this node
    /// (the recoveries that run without etcd's cluster lock). Refused beside a
    /// --backup-restore-node that names another node
    #[arg(long)]
    pub allow_backup_restore: bool,
    /// The one node allowed to restore a backup or start the local etcd data dir
    /// (compared with --node-name), so two masters never restore two different pasts.
    #[arg(long, value_name = "NAME")]
    pub backup_restore_node: Option<String>,
    /// Recovered asset dirs are kept here, one per recovery.
    #[arg(long, default_value = "/var/lib/kubeboot/recovery", value_name = "DIR")]
    pub recovery_root: PathBuf,
    /// How many earlier recovered asset dirs to keep under --recovery-root (they hold
    /// the cluster's keys); older ones, and the temp files of a killed run, are removed
    /// at every run and after each recovery.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub keep_recoveries: usize,
    /// The bootstrap-secrets dir as the kubelet sees it, when kubeboot runs in another
    /// mount namespace than the kubelet (a container, a chroot, the test harness)
    /// [default: --bootstrap-secrets-dir].
    #[arg(long, value_name = "DIR")]
    pub host_bootstrap_secrets_dir: Option<PathBuf>,
    /// How long the cluster-wide recovery lock in etcd outlives a master that died
    /// holding it.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub recovery_lock_ttl: Duration,
    /// Print what would be decided, and on what evidence, and change nothing. The
    /// kubelet's state is reported but does not hold the decision up. Exits with the
    /// status the decision would (0 for a recovery).
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run, the decision and its evidence (docs/ensure.md: decision, via,
    /// reason, exit_code, evidence, policy); after a real run, its outcome
    /// (docs/cli.md). Logs stay on stderr and in the journal.
    #[command(flatten)]
    pub output: OutputFlag,
    #[command(flatten)]
    pub start: StartFlags,
    /// Shared with `kubeboot start`: one recovery at a time on a node.
    #[arg(long, default_value = "/run/kubeboot/start.lock", value_name = "FILE")]
    pub lock_file: PathBuf,
}

pub fn run(args: EnsureArgs) -> Result<(), Failure> {
    args.etcd.check()?;
    let output = args.output;
    // Read before anything else, so a file that holds no identity is exit 2 at once,
    // not a surprise at 3 a.m. when the backups are finally needed.
    let identity = match &args.identity {
        Some(path) => Some(Identity::load(path).exit_with(Exit::Usage)?),
        None => None,
    };
    let encryption = match &args.encryption_provider_config {
        Some(path) => Some(EncryptionConfig::from_file(path).exit_with(Exit::Usage)?),
        None => None,
    };
    let secrets = args
        .host_bootstrap_secrets_dir
        .as_ref()
        .unwrap_or(&args.start.bootstrap_secrets_dir)
        .display()
        .to_string();
    let start = args.start.options(PathBuf::new(), None)?;
    let node_name = start.node_name.clone();
    let named = args
        .backup_restore_node
        .as_deref()
        .filter(|n| !n.is_empty());
    // The policy names one node, the same value on every master; a master that is also
    // told "allowed here" while another is named would make two restorers.
    if let Some(n) = named
        && args.allow_backup_restore
        && n != node_name
    {
        return Err(usage(format!(
            "--allow-backup-restore on {node_name:?} contradicts --backup-restore-node {n:?}: the policy names one node to restore; give only --backup-restore-node, the same on every master"
        )));
    }
    let backup_restore_allowed = args.allow_backup_restore || named == Some(node_name.as_str());
    let cri_socket = crate::cri::socket_flag(&args.cri_socket).map_err(usage)?;
    let render = RenderOptions::under(&secrets, None);
    let etcd = (!args.etcd.etcd_servers.is_empty()).then(|| args.etcd.config());
    // What the rendered self-hosted etcd mounts, unless the operator's etcd lives elsewhere.
    let etcd_data_dir = start
        .etcd_data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::newcluster::etcd::DATA_DIR));
    if start.required.is_empty() {
        return Err(usage("--required-pods must name at least one component"));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let host_etcd = runtime
        .block_on(args.host_etcd.resolve(
            args.systemd_bus_address.as_deref(),
            &args.etcd.config(),
            start.etcd_revision_bump,
            start.pivot_timeout,
        ))
        .map_err(usage)?;
    let remote_backups = match (&args.backup_remote, args.allow_remote_backup) {
        (Some(url), true) => Some(ensure::remote::RemoteBackups {
            url: url.clone(),
            options: fetch::parse_options(&args.remote.remote_option).map_err(usage)?,
        }),
        (Some(url), false) => {
            tracing::info!("--backup-remote {url} is not used: --allow-remote-backup is not given");
            None
        }
        _ => None,
    };
    let opts = ensure::Options {
        kubeconfig: args.kubeconfig,
        kubelet_healthz: args.kubelet_healthz_url,
        kubelet_unit: (!args.kubelet_unit.is_empty()).then_some(args.kubelet_unit),
        systemd_bus: args.systemd_bus_address,
        cri_socket,
        etcd,
        etcd_prefix: args.etcd.etcd_prefix,
        encryption,
        backup_dir: args.backup_dir,
        remote_backups,
        identity,
        etcd_data_dir,
        policy: Policy {
            boot_grace: args.boot_grace,
            backup_restore_allowed,
        },
        required: start.required.clone(),
        rules: start.rules,
        poll: start.poll,
        request_timeout: start.request_timeout,
        recovery_root: args.recovery_root,
        keep_recoveries: args.keep_recoveries,
        render,
        start,
        dry_run: args.dry_run,
        node_name,
        lock_ttl: args.recovery_lock_ttl,
        host_etcd,
    };
    let _lock = super::take_lock(&args.lock_file, "start or ensure")?;
    runtime.block_on(async {
        let mut progress = Progress::starting("checking the control plane");
        progress.phase("check");
        let outcome = until_signal(ensure::run(&opts, &mut progress)).await?;
        match outcome {
            Some(Ok(Outcome::Healthy)) => {
                emit_machine(output, &RunReport::healthy())?;
                Ok(())
            }
            Some(Ok(Outcome::DryRun { decision, report })) => {
                emit_machine(output, &report)?;
                match decision {
                    Decision::Recover { via, why } => {
                        if output.output == Format::Text {
                            println!("would recover from {}: {why}", describe(&via));
                        }
                        Ok(())
                    }
                    Decision::Healthy | Decision::Wait(_) => Ok(()),
                    Decision::Unhealthy(w) => Err(failure(EnsureError::Unhealthy(w))),
                    Decision::Refused(w) => Err(failure(EnsureError::Refused(w))),
                    Decision::NoSource(w) => Err(failure(EnsureError::NoSource(w))),
                    Decision::Failed(w) => Err(failure(EnsureError::Failed(w))),
                    Decision::Misconfigured(w) => Err(failure(EnsureError::Config(w))),
                }
            }
            Some(Ok(Outcome::Recovered {
                via,
                asset_dir,
                summary,
            })) => {
                progress.phase("done");
                progress.step_with(
                    Fields::outcome("recovered").with_source(via.word()),
                    &format!(
                        "recovered from {} into {}; {}",
                        describe(&via),
                        asset_dir.display(),
                        summary_line(&summary)
                    ),
                );
                emit_machine(output, &RunReport::recovered(&via, &asset_dir, &summary))?;
                Ok(())
            }
            Some(Err(e)) => Err(failure(e)),
            None => Err(interrupted(&progress, "kubeboot ensure")),
        }
    })
}

/// `report` on stdout for `-o json|yaml`; text says what it has to say in its own lines.
fn emit_machine<T: serde::Serialize>(output: OutputFlag, report: &T) -> Result<(), Failure> {
    if output.output != Format::Text {
        print!("{}", super::render_report(report, output.output)?);
    }
    Ok(())
}

fn describe(via: &Via) -> String {
    match via {
        Via::Apiserver => "the api-server".into(),
        Via::Etcd => "etcd".into(),
        // A backup from the store is named by its URL, not its private copy.
        Via::Backup(b) => format!("backup {} (revision {})", b.source(), b.revision),
        Via::Local { dir, revision } => format!(
            "the local etcd data in {} (revision {revision}, started as it is)",
            dir.display()
        ),
    }
}

fn failure(e: EnsureError) -> Failure {
    let code = match &e {
        EnsureError::Unhealthy(_) => Exit::Unhealthy,
        EnsureError::LockLost(_) => Exit::LockLost,
        EnsureError::Refused(_) => Exit::Policy,
        EnsureError::NoSource(_) => Exit::NoSource,
        EnsureError::Changed(_) => Exit::Changed,
        EnsureError::Kubeconfig(_) | EnsureError::Config(_) => Exit::Usage,
        // Same mapping as `kubeboot recover`.
        EnsureError::Recover { error, .. } => super::recover::exit_code(error),
        // The asset dir is ensure's own, so even an "input" error is a failure here.
        EnsureError::Start { .. } | EnsureError::Failed(_) | EnsureError::Fs(_) => Exit::Failed,
    };
    Failure {
        code,
        error: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reports_its_outcome_in_the_documented_shape() {
        assert_eq!(
            serde_json::to_value(RunReport::healthy()).unwrap(),
            serde_json::json!({"outcome": "healthy"})
        );
        let summary = Summary {
            elapsed: Duration::from_millis(61_234),
            pivoted: vec!["kube-apiserver".into()],
            others: vec!["kube-scheduler".into()],
        };
        let via = Via::Local {
            dir: "/var/lib/etcd".into(),
            revision: 9,
        };
        let r = RunReport::recovered(&via, std::path::Path::new("/var/lib/kubeboot/r1"), &summary);
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            serde_json::json!({
                "outcome": "recovered",
                "via": "local",
                "source": "the local etcd data in /var/lib/etcd (revision 9, started as it is)",
                "assetDir": "/var/lib/kubeboot/r1",
                "pivoted": ["kube-apiserver"],
                "others": ["kube-scheduler"],
                "seconds": 61.2,
            })
        );
    }
}
