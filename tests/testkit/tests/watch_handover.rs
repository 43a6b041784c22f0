//! A kubelet's pod watch across api-server hand-overs, as in a pivot: two fake
//! api-servers share the port (`--permit-port-sharing`), the one the watch may be on
//! stops, and a pod bound to the node afterwards must still reach the watcher.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kubeboot_testkit::apiserver::ApiServer;
use kubeboot_testkit::apiserver::harness::Harness;
use serde_json::json;

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "pause"}]}
    }))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_watch_follows_the_api_server_that_stays() -> Result<()> {
    let mut config = None;
    let mut h = Harness::start_with(|c, _| {
        c.permit_port_sharing = true;
        config = Some(c.clone());
        Ok(())
    })
    .await?;
    let mut config = config.context("no config")?;
    config.secure_port = h.server.addr().port();
    let client = h.kube_client().await?;
    let pods: Api<Pod> = Api::all(client.clone());
    let wc = watcher::Config::default().fields("spec.nodeName=n1");
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(pods, wc).default_backoff());
    let watch = tokio::spawn(stream.for_each(|_| async {}));
    let create: Api<Pod> = Api::namespaced(client, "default");
    let mut current = h.server;
    for round in 0..10u64 {
        let next = ApiServer::start(config.clone()).await?;
        let name = format!("p{round}");
        // The pauses vary where the watch is when a server leaves; nothing waits on them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        if round % 2 == 0 {
            // etcd restarts under both (the etcd pivot), then the api-server pivots.
            tokio::task::block_in_place(|| h.etcd.shutdown())?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            tokio::task::block_in_place(|| h.etcd.restart())?;
            tokio::time::sleep(Duration::from_millis(200 * (round % 7))).await;
        }
        drop(std::mem::replace(&mut current, next));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            match create.create(&PostParams::default(), &pod(&name)?).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("create {name}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        loop {
            if store
                .state()
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(&name))
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("round {round}: the watch never delivered pod {name}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    watch.abort();
    Ok(())
}
