//! `fake-apiserver`: the kube-apiserver double as a process, so a static pod manifest
//! rendered for kube-apiserver can run it with the same flags (unknown ones are logged
//! and ignored). The server itself is `kubeboot_testkit::apiserver`. Started by the
//! fake-kubelet, it also honours `KUBEBOOT_TESTKIT_NODE_IP` and `KUBEBOOT_TESTKIT_MOUNTS`
//! (`apiserver::node`), and tests may add the double's own `--testkit-fault` flag.

use anyhow::Result;
use kubeboot_testkit::apiserver::{ApiServer, Config, node};

fn main() -> Result<()> {
    let (mut config, ignored) = Config::from_args(std::env::args().skip(1))?;
    let (node_ip, mounts) = node::from_env()?;
    config.resolve_node(node_ip, &mounts);
    for flag in &ignored {
        kubeboot_testkit::note!("fake-apiserver: ignoring unsupported flag {flag}");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = ApiServer::start(config).await?;
        kubeboot_testkit::note!("fake-apiserver: serving on {}", server.url());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        kubeboot_testkit::note!("fake-apiserver: shutting down");
        Ok(())
    })
}
