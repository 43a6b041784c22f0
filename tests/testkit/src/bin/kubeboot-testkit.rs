//! Shell-side access to the testkit for `scripts/demo` and the benchmarks:
//! - `kubeboot-testkit load ENDPOINT [DIR] [PREFIX]` stores a cluster's YAML objects in
//!   etcd exactly as kube-apiserver would;
//! - `kubeboot-testkit fill ENDPOINT COUNT` writes COUNT api-server-shaped keys with
//!   100–400 byte values, in transactions, for snapshot benchmarks.

use anyhow::{Context, Result, bail};
use etcd_client::{Client, Txn, TxnOp};
use kubeboot_testkit::cluster;

const USAGE: &str = "usage: kubeboot-testkit load ENDPOINT [DIR] [PREFIX] | fill ENDPOINT COUNT";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, endpoint, rest @ ..] = args.as_slice() else {
        bail!("{USAGE}");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let connect = || async {
        Client::connect([endpoint.as_str()], None)
            .await
            .with_context(|| format!("connecting to {endpoint}"))
    };
    match cmd.as_str() {
        "load" => {
            let dir = rest
                .first()
                .map_or_else(cluster::cluster_data_dir, std::path::PathBuf::from);
            let prefix = rest.get(1).map_or("/registry", String::as_str);
            let objects = cluster::read_objects(&dir)?;
            let entries = cluster::storage_entries(prefix, &objects)?;
            runtime.block_on(async { cluster::put_all(&mut connect().await?, &entries).await })?;
            for (key, value) in &entries {
                println!("stored {key} ({} bytes)", value.len());
            }
        }
        "fill" => {
            let count: u64 = rest.first().context(USAGE)?.parse().context("COUNT")?;
            runtime.block_on(async { fill(connect().await?, count).await })?;
            println!("wrote {count} keys");
        }
        _ => bail!("unknown command {cmd:?}; {USAGE}"),
    }
    Ok(())
}

/// Writes `count` keys in 4 concurrent streams of 128-put transactions (etcd's default
/// `--max-txn-ops`).
async fn fill(client: Client, count: u64) -> Result<()> {
    const RESOURCES: [&str; 5] = ["pods", "secrets", "configmaps", "events", "leases"];
    const STREAMS: u64 = 4;
    let mut tasks = Vec::new();
    for stream in 0..STREAMS {
        let mut kv = client.kv_client();
        tasks.push(tokio::spawn(async move {
            let mut i = stream;
            while i < count {
                let mut ops = Vec::with_capacity(128);
                while ops.len() < 128 && i < count {
                    let res = RESOURCES[(i % 5) as usize];
                    let key = format!("/registry/{res}/ns-{:03}/object-{i:08}", i % 97);
                    let len = 100 + (i.wrapping_mul(2_654_435_761) % 300) as usize;
                    ops.push(TxnOp::put(key, vec![b'v'; len], None));
                    i += STREAMS;
                }
                kv.txn(Txn::new().and_then(ops)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
