//! The process shell every long-running double shares: a tokio runtime, a shutdown
//! future that resolves on SIGTERM or SIGINT (what the fake-kubelet sends a container),
//! and the error printed as `<name>: <error>` with exit code 1.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

/// Resolves when the process is asked to stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `main(shutdown)` to completion: exit 0 on `Ok`, 1 on `Err`.
pub fn run_until_signal<F, Fut>(name: &str, main: F) -> ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(async {
                let mut term = signal(SignalKind::terminate())?;
                let mut int = signal(SignalKind::interrupt())?;
                let shutdown: Shutdown = Box::pin(async move {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                });
                main(shutdown).await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
