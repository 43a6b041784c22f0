//! `fake-pause`: stands in for an image whose process the tests never talk to
//! (kube-proxy, and the pod checkpointer until `kubeboot checkpoint` exists). Like the
//! pause container it accepts any arguments, does nothing, and exits 0 on SIGTERM or
//! SIGINT.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let run = async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<(), std::io::Error>(())
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(run));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-pause: {e}");
            ExitCode::FAILURE
        }
    }
}
