//! `fake-controller-manager`: Deployment, ReplicaSet and DaemonSet controllers, pod GC,
//! the node lifecycle controller (`--node-monitor-period` 5s, `--node-monitor-grace-period`
//! 50s, `--node-startup-grace-period` 1m) and taint eviction, behind Lease leader
//! election, with kube-controller-manager's flags. The logic is in
//! `kubeboot_testkit::controllers`; this is flags, the runtime and signals.
//! Exit codes: 0 after SIGTERM/SIGINT (or `--help`), 2 bad flags, 1 any other error,
//! including a lost leader lease (the real component exits too, to be restarted).

use std::process::ExitCode;

use kubeboot_testkit::controllers::{self, Config, config};

fn main() -> ExitCode {
    let profile = &config::CONTROLLER_MANAGER;
    let cfg = match Config::from_args(profile, std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{}", config::usage(profile));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            kubeboot_testkit::note!("{}: {e:#}", profile.name);
            return ExitCode::from(2);
        }
    };
    kubeboot_testkit::daemon::run_until_signal(profile.name, |shutdown| {
        controllers::run(cfg, shutdown)
    })
}
