//! `fake-scheduler`: binds pending pods to fitting, Ready nodes behind Lease leader
//! election, with kube-scheduler's flags. The logic is in
//! `kubeboot_testkit::scheduler`; this is flags, the runtime and signals.
//! Exit codes: 0 after SIGTERM/SIGINT (or `--help`), 2 bad flags, 1 any other error,
//! including a lost leader lease (the real component exits too, to be restarted).

use std::process::ExitCode;

use kubeboot_testkit::controllers::{Config, config};
use kubeboot_testkit::scheduler;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let profile = &config::SCHEDULER;
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
                scheduler::run(cfg, shutdown).await
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
