//! `fake-controller-manager`: Deployment, ReplicaSet and DaemonSet controllers plus pod
//! GC behind Lease leader election, with kube-controller-manager's flags. The logic is
//! in `kubeboot_testkit::controllers`; this is flags, the runtime and signals.
//! Exit codes: 0 after SIGTERM/SIGINT (or `--help`), 2 bad flags, 1 any other error,
//! including a lost leader lease (the real component exits too, to be restarted).

use std::process::ExitCode;

use kubeboot_testkit::controllers::{self, Config, config};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let profile = &config::CONTROLLER_MANAGER;
    let cfg = match Config::from_args(profile, std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{}", config::usage(profile));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}: {e:#}", profile.name);
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let mut term = signal(SignalKind::terminate())?;
                let mut int = signal(SignalKind::interrupt())?;
                let shutdown = async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                };
                controllers::run(cfg, shutdown).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e:#}", profile.name);
            ExitCode::FAILURE
        }
    }
}
