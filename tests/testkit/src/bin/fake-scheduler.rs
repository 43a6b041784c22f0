//! `fake-scheduler`: binds pending pods to fitting, Ready nodes behind Lease leader
//! election, with kube-scheduler's flags. The logic is in
//! `kubeboot_testkit::scheduler`; this is flags, the runtime and signals.
//! Exit codes: 0 after SIGTERM/SIGINT (or `--help`), 2 bad flags, 1 any other error,
//! including a lost leader lease (the real component exits too, to be restarted).

use std::process::ExitCode;

use kubeboot_testkit::controllers::{Config, config};
use kubeboot_testkit::scheduler;

fn main() -> ExitCode {
    let profile = &config::SCHEDULER;
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
        scheduler::run(cfg, shutdown)
    })
}
