//! Shell-side access to the testkit for `scripts/demo`:
//! `kubeboot-testkit load ENDPOINT [DIR] [PREFIX]` stores a cluster's YAML objects in
//! etcd exactly as kube-apiserver would.

use anyhow::{Context, Result, bail};
use kubeboot_testkit::cluster;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, endpoint, rest @ ..] = args.as_slice() else {
        bail!("usage: kubeboot-testkit load ENDPOINT [DIR] [PREFIX]");
    };
    if cmd != "load" {
        bail!("unknown command {cmd:?}; usage: kubeboot-testkit load ENDPOINT [DIR] [PREFIX]");
    }
    let dir = rest
        .first()
        .map_or_else(cluster::cluster_data_dir, std::path::PathBuf::from);
    let prefix = rest.get(1).map_or("/registry", String::as_str);
    let objects = cluster::read_objects(&dir)?;
    let entries = cluster::storage_entries(prefix, &objects)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        cluster::put_all(&mut client, &entries).await
    })?;
    for (key, value) in &entries {
        println!("stored {key} ({} bytes)", value.len());
    }
    Ok(())
}
