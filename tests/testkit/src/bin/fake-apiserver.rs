//! `fake-apiserver`: the kube-apiserver double as a process, so a static pod manifest
//! rendered for kube-apiserver can run it with the same flags (unknown ones are logged
//! and ignored). The server itself is `kubeboot_testkit::apiserver`.

use anyhow::Result;
use kubeboot_testkit::apiserver::{ApiServer, Config};

fn main() -> Result<()> {
    let (config, ignored) = Config::from_args(std::env::args().skip(1))?;
    for flag in &ignored {
        eprintln!("fake-apiserver: ignoring unsupported flag {flag}");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = ApiServer::start(config).await?;
        eprintln!("fake-apiserver: serving on {}", server.url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("fake-apiserver: shutting down");
        Ok(())
    })
}
