//! `fake-controller-manager` as a child process against a real etcd and the fake
//! api-server: DaemonSets (placement by selector and taints, node removal, template
//! change), Deployments (ReplicaSet and pods, replacement of a deleted pod, surviving
//! an api-server restart), leader election between two instances, and its flags.

#[path = "controllers_support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use serde_json::json;
use support::*;

const CM: &str = env!("CARGO_BIN_EXE_fake-controller-manager");
const SCHED: &str = env!("CARGO_BIN_EXE_fake-scheduler");

fn agent_ds(image: &str) -> Result<DaemonSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                "containers": [{"name": "agent", "image": image}],
                "nodeSelector": {"pool": "agents"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "agent", "effect": "NoSchedule"}]
            }}
        }
    }))?)
}

fn web_deployment(replicas: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}
    }))?)
}

/// Pod names by node, failing unless the nodes are exactly `want`.
async fn ds_pods_on(c: &kube::Client, want: &[&str]) -> Result<Vec<Pod>> {
    let pods = active_pods(c, "kube-system", "app=agent").await?;
    let mut nodes: Vec<String> = pods.iter().map(node_of).collect();
    nodes.sort();
    ensure!(nodes == want, "agent pods on {nodes:?}, want {want:?}");
    Ok(pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_places_one_pod_per_eligible_node_and_follows_changes() -> Result<()> {
    run_test(|logs| async move {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let agents = json!({"pool": "agents"});
        create_nodes(&c, vec![
            node("a", agents.clone(), json!([]), true)?,
            node("b", agents.clone(), json!([{"key": "dedicated", "value": "agent", "effect": "NoSchedule"}]), true)?,
            node("c", agents.clone(), json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]), true)?,
            node("d", json!({"pool": "web"}), json!([]), true)?,
        ]).await?;
        let _cm = Proc::start(CM, &flags(&h, &[]), "cm", &logs)?;
        // Daemon pods are placed by the scheduler, as since Kubernetes 1.12.
        let sched_flags = flags(&h, &["--authentication-kubeconfig=/x", "--authorization-kubeconfig=/x"]);
        let _sched = Proc::start(SCHED, &sched_flags, "sched", &logs)?;
        let dss: Api<DaemonSet> = Api::namespaced(c.clone(), "kube-system");
        dss.create(&PostParams::default(), &agent_ds("agent:1")?).await?;

        let pods = eventually("one agent pod on a and b", STEP, || ds_pods_on(&c, &["a", "b"])).await?;
        let first_hash = pods.first().and_then(|p| p.metadata.labels.clone()).unwrap_or_default()
            .get("controller-revision-hash").cloned().context("no controller-revision-hash")?;
        for p in &pods {
            let owner = p.metadata.owner_references.clone().unwrap_or_default();
            ensure!(owner.len() == 1 && owner.iter().all(|o| o.kind == "DaemonSet" && o.controller == Some(true)
                && o.block_owner_deletion == Some(true)), "owner refs {owner:?}");
            ensure!(name_of(p).starts_with("agent-"), "name {}", name_of(p));
        }
        eventually("DaemonSet status", STEP, || async {
            let st = dss.get_status("agent").await?.status.unwrap_or_default();
            ensure!(st.desired_number_scheduled == 2 && st.current_number_scheduled == 2
                && st.updated_number_scheduled == Some(2) && st.observed_generation == Some(1), "{st:?}");
            Ok(())
        }).await?;

        // Settled: the status is not rewritten every cycle.
        let rv = dss.get("agent").await?.metadata.resource_version;
        holds("a settled DaemonSet stays unwritten", Duration::from_secs(2), || async {
            let now = dss.get("agent").await?.metadata.resource_version;
            ensure!(now == rv, "resourceVersion {rv:?} -> {now:?}");
            Ok(())
        })
        .await?;

        // A node that starts matching gets a pod; one that is deleted loses it.
        let nodes: Api<Node> = Api::all(c.clone());
        nodes.patch("d", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"pool": "agents"}}}))).await?;
        eventually("a pod on d", STEP, || ds_pods_on(&c, &["a", "b", "d"])).await?;
        nodes.delete("b", &Default::default()).await?;
        eventually("b's pod collected", STEP, || ds_pods_on(&c, &["a", "d"])).await?;

        // A deleted pod comes back.
        let pods = ds_pods_on(&c, &["a", "d"]).await?;
        let gone = pods.first().map(name_of).context("no pod")?;
        Api::<Pod>::namespaced(c.clone(), "kube-system").delete(&gone, &Default::default()).await?;
        eventually("the deleted pod replaced", STEP, || async {
            let pods = ds_pods_on(&c, &["a", "d"]).await?;
            ensure!(pods.iter().all(|p| name_of(p) != gone), "{gone} still there");
            Ok(())
        }).await?;

        // A new template replaces every pod (none is Ready, so no budget holds them).
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}});
        dss.patch("agent", &PatchParams::default(), &Patch::Merge(patch)).await?;
        eventually("pods on the new template", STEP, || async {
            let pods = ds_pods_on(&c, &["a", "d"]).await?;
            for p in &pods {
                let hash = p.metadata.labels.clone().unwrap_or_default().get("controller-revision-hash").cloned();
                let image = p.spec.as_ref().and_then(|s| s.containers.first()).and_then(|c| c.image.clone());
                ensure!(hash.as_ref() != Some(&first_hash) && image.as_deref() == Some("agent:2"), "{hash:?} {image:?}");
            }
            Ok(())
        }).await?;
        Ok(())
    })
    .await
}

async fn deployment_settled(c: &kube::Client, replicas: usize) -> Result<Vec<Pod>> {
    let rss: Api<ReplicaSet> = Api::namespaced(c.clone(), "default");
    let rs = rss.list(&ListParams::default()).await?.items;
    ensure!(rs.len() == 1, "{} ReplicaSets", rs.len());
    let hash = rs
        .iter()
        .flat_map(|r| r.metadata.labels.clone())
        .flatten()
        .find(|(k, _)| k == "pod-template-hash")
        .map(|(_, v)| v)
        .context("no pod-template-hash")?;
    ensure!(
        rs.first().and_then(|r| r.metadata.name.clone()) == Some(format!("web-{hash}")),
        "RS name"
    );
    let pods = active_pods(c, "default", &format!("app=web,pod-template-hash={hash}")).await?;
    ensure!(
        pods.len() == replicas,
        "{} pods, want {replicas}",
        pods.len()
    );
    ensure!(
        pods.iter().all(|p| node_of(p).is_empty()),
        "a pod was bound with no scheduler running"
    );
    Ok(pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_gets_a_replicaset_and_pods_and_survives_an_apiserver_restart() -> Result<()> {
    run_test(|logs| async move {
        let mut h = Harness::start().await?;
        let c = h.kube_client().await?;
        let mut cm = Proc::start(
            CM,
            &flags(
                &h,
                &[
                    "--leader-elect-renew-deadline=10s",
                    "--leader-elect-lease-duration=15s",
                ],
            ),
            "cm",
            &logs,
        )?;
        let deps: Api<Deployment> = Api::namespaced(c.clone(), "default");
        deps.create(&PostParams::default(), &web_deployment(3)?)
            .await?;
        let pods = eventually("3 pods", STEP, || deployment_settled(&c, 3)).await?;
        eventually("Deployment status", STEP, || async {
            let st = deps.get_status("web").await?.status.unwrap_or_default();
            let progressing = st
                .conditions
                .unwrap_or_default()
                .into_iter()
                .any(|c| c.type_ == "Progressing");
            ensure!(
                st.replicas == Some(3)
                    && st.updated_replicas == Some(3)
                    && st.observed_generation == Some(1)
                    && progressing,
                "status not there yet"
            );
            Ok(())
        })
        .await?;

        let victim = pods.first().map(name_of).context("no pod")?;
        restart_apiserver(&mut h, async {
            // Long enough for several failed cycles.
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        })
        .await?;
        let c = h.kube_client().await?;
        Api::<Pod>::namespaced(c.clone(), "default")
            .delete(&victim, &Default::default())
            .await?;
        eventually("the deleted pod replaced", STEP, || async {
            let pods = deployment_settled(&c, 3).await?;
            ensure!(
                pods.iter().all(|p| name_of(p) != victim),
                "{victim} still there"
            );
            Ok(())
        })
        .await?;
        ensure!(
            cm.running(),
            "the controller-manager exited across the restart"
        );

        Api::<Deployment>::namespaced(c.clone(), "default")
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 1}})),
            )
            .await?;
        eventually("scaled to 1", STEP, || deployment_settled(&c, 1)).await?;
        Ok(())
    })
    .await
}

async fn holder(c: &kube::Client) -> Result<String> {
    let lease = Api::<Lease>::namespaced(c.clone(), "kube-system")
        .get("kube-controller-manager")
        .await?;
    lease
        .spec
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
        .context("no holder")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_another_takes_over() -> Result<()> {
    run_test(|logs| async move {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let mut one = Proc::start(CM, &flags(&h, &[]), "cm1", &logs)?;
        let mut two = Proc::start(CM, &flags(&h, &[]), "cm2", &logs)?;
        let first = eventually("a leader", STEP, || holder(&c)).await?;
        Api::<Deployment>::namespaced(c.clone(), "default")
            .create(&PostParams::default(), &web_deployment(2)?)
            .await?;
        eventually("2 pods", STEP, || deployment_settled(&c, 2)).await?;
        let acquired = |p: &Proc| p.log_text().contains("successfully acquired");
        let (leader, standby) = match (acquired(&one), acquired(&two)) {
            (true, false) => (&mut one, &mut two),
            (false, true) => (&mut two, &mut one),
            other => bail!("leaders (cm1, cm2): {other:?}"),
        };
        holds("2 pods", Duration::from_secs(2), || async {
            deployment_settled(&c, 2).await.map(|_| ())
        })
        .await?;
        ensure!(
            !standby.log_text().contains("created"),
            "the standby wrote objects"
        );
        leader.kill();
        let second = eventually("a new leader", Duration::from_secs(15), || async {
            let now = holder(&c).await?;
            ensure!(now != first, "still {first}");
            Ok(now)
        })
        .await?;
        // The lease write lands before the process logs it: wait for the log line.
        eventually("the standby logs acquiring the lease", STEP, || async {
            ensure!(
                acquired(standby),
                "lease holder {second} but the standby did not log acquiring it"
            );
            Ok(())
        })
        .await?;
        let pods = deployment_settled(&c, 2).await?;
        let victim = pods.first().map(name_of).context("no pod")?;
        Api::<Pod>::namespaced(c.clone(), "default")
            .delete(&victim, &Default::default())
            .await?;
        eventually("the new leader replaces a pod", STEP, || async {
            let pods = deployment_settled(&c, 2).await?;
            ensure!(
                pods.iter().all(|p| name_of(p) != victim),
                "{victim} still there"
            );
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await
}

#[test]
fn flags_help_and_unknown() -> Result<()> {
    let help = Command::new(CM).arg("--help").output()?;
    ensure!(help.status.success(), "--help: {:?}", help.status);
    let bad = Command::new(CM).arg("--no-such-flag=1").output()?;
    ensure!(
        bad.status.code() == Some(2),
        "unknown flag: {:?}",
        bad.status
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    ensure!(
        err.trim().lines().count() == 1 && err.contains("no-such-flag"),
        "stderr: {err}"
    );
    Ok(())
}
