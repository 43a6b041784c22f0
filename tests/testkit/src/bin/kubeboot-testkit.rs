//! Shell-side access to the testkit for `scripts/demo` and the benchmarks:
//! - `kubeboot-testkit load ENDPOINT [DIR] [PREFIX]` stores a cluster's YAML objects in
//!   etcd exactly as kube-apiserver would;
//! - `kubeboot-testkit fill ENDPOINT COUNT [MIX]` writes COUNT api-server-shaped keys,
//!   in transactions, for the benchmarks (scripts/bench). MIX is `plain` (the default:
//!   100–400 byte filler values), `objects` (real objects as the api-server stores them:
//!   pods, leases and events of about 1 KB, and ConfigMaps and Secrets of 1–10 KB, in
//!   the codec's protobuf) or `random` (random bytes of 0.5–3 KB, which compress and
//!   decode as nothing).

use anyhow::{Context, Result, bail};
use etcd_client::{Client, Txn, TxnOp};
use kubeboot_testkit::cluster;

const USAGE: &str = "usage: kubeboot-testkit load ENDPOINT [DIR] [PREFIX] | fill ENDPOINT COUNT [plain|objects|random]";

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
            let mix = match rest.get(1).map(String::as_str) {
                None | Some("plain") => Mix::Plain,
                Some("objects") => Mix::Objects,
                Some("random") => Mix::Random,
                Some(other) => bail!("unknown mix {other:?}; {USAGE}"),
            };
            runtime.block_on(async { fill(connect().await?, count, mix).await })?;
            println!("wrote {count} keys");
        }
        _ => bail!("unknown command {cmd:?}; {USAGE}"),
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Mix {
    Plain,
    Objects,
    Random,
}

/// Key `i` and its value under `mix`.
fn entry(i: u64, mix: Mix) -> Result<(String, Vec<u8>)> {
    const RESOURCES: [&str; 5] = ["pods", "secrets", "configmaps", "events", "leases"];
    let res = RESOURCES[(i % 5) as usize];
    let ns = format!("ns-{:03}", i % 97);
    let spread = |lo: u64, hi: u64| lo + i.wrapping_mul(2_654_435_761) % (hi - lo);
    match mix {
        Mix::Plain => {
            let key = format!("/registry/{res}/{ns}/object-{i:08}");
            Ok((key, vec![b'v'; spread(100, 400) as usize]))
        }
        Mix::Random => {
            let key = format!("/registry/{res}/{ns}/object-{i:08}");
            let mut value = vec![0u8; spread(512, 3072) as usize];
            rand::fill(&mut value[..]);
            Ok((key, value))
        }
        Mix::Objects => {
            let name = format!("object-{i:08}");
            let meta = serde_json::json!({"name": name, "namespace": ns, "labels": {"app": format!("app-{}", i % 13)}});
            let text = |len: u64| "x".repeat(len as usize);
            let object = match res {
                "secrets" => {
                    serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                    "data": {"blob": base64_of(spread(1024, 10240))}})
                }
                "configmaps" => {
                    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                    "data": {"blob": text(spread(1024, 10240))}})
                }
                "pods" => serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                    "spec": {"nodeName": format!("node-{}", i % 50), "containers": [{"name": "app",
                        "image": "registry.k8s.io/pause:3.10", "args": [text(spread(200, 600))]}]}}),
                "events" => {
                    serde_json::json!({"apiVersion": "v1", "kind": "Event", "metadata": meta,
                    "involvedObject": {"kind": "Pod", "namespace": ns, "name": name},
                    "reason": "Scheduled", "message": text(spread(300, 900)), "type": "Normal"})
                }
                _ => {
                    serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                    "spec": {"holderIdentity": format!("node-{}", i % 50), "leaseDurationSeconds": 40}})
                }
            };
            let mut entries = cluster::storage_entries("/registry", &[object])?;
            entries.pop().context("no entry for an object")
        }
    }
}

/// `len` bytes of Secret data, base64 as the API carries it.
fn base64_of(len: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(vec![b's'; len as usize])
}

/// Writes `count` keys in 4 concurrent streams of 128-put transactions (etcd's default
/// `--max-txn-ops`).
async fn fill(client: Client, count: u64, mix: Mix) -> Result<()> {
    const STREAMS: u64 = 4;
    let mut tasks = Vec::new();
    for stream in 0..STREAMS {
        let mut kv = client.kv_client();
        tasks.push(tokio::spawn(async move {
            let mut i = stream;
            while i < count {
                let mut ops = Vec::with_capacity(128);
                while ops.len() < 128 && i < count {
                    let (key, value) = entry(i, mix)?;
                    ops.push(TxnOp::put(key, value, None));
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
