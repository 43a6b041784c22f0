//! The doubles refuse what Kubernetes refuses where recovery depends on it (issue 10,
//! `docs/doubles.md`): the api-server defaults a hostNetwork Pod's ports to host ports
//! (Pods only, not templates), and DaemonSet pods are made unbound with a node-affinity
//! term and placed by the scheduler, which honours that term and the NodePorts filter.
//! Each test fails against a double that forgives (stores ports as given, binds daemon
//! pods itself, or ignores a held port).

#[path = "controllers_support.rs"]
mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use serde_json::{Value, json};
use support::*;

const CM: &str = env!("CARGO_BIN_EXE_fake-controller-manager");
const SCHED: &str = env!("CARGO_BIN_EXE_fake-scheduler");

fn host_ports(spec: &Value, list: &str) -> Vec<Value> {
    spec[list]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .map(|p| p["hostPort"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostnetwork_pod_ports_are_defaulted_to_host_ports_but_templates_are_not() -> Result<()> {
    run_test(|_logs| async move {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let spec = |host_net: bool| {
            json!({"hostNetwork": host_net,
            "initContainers": [{"name": "i", "image": "x", "ports": [{"containerPort": 7001}]}],
            "containers": [{"name": "c", "image": "x", "ports": [
                {"containerPort": 7000}, {"containerPort": 7002, "hostPort": 17002}]}]})
        };
        for (name, host_net) in [("hn", true), ("plain", false)] {
            let pod: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name}, "spec": spec(host_net)}))?;
            pods.create(&PostParams::default(), &pod).await?;
        }
        let hn = serde_json::to_value(pods.get("hn").await?.spec)?;
        ensure!(
            host_ports(&hn, "containers") == [json!(7000), json!(17002)],
            "containers {hn}"
        );
        ensure!(
            host_ports(&hn, "initContainers") == [json!(7001)],
            "init containers {hn}"
        );
        let plain = serde_json::to_value(pods.get("plain").await?.spec)?;
        ensure!(
            host_ports(&plain, "containers") == [Value::Null, json!(17002)],
            "plain {plain}"
        );
        ensure!(
            host_ports(&plain, "initContainers") == [Value::Null],
            "plain init {plain}"
        );

        // A template is not a Pod: a Deployment keeps its ports as given.
        let d: Deployment =
            serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": spec(true)}}}))?;
        let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
        deployments.create(&PostParams::default(), &d).await?;
        let got = deployments.get("d").await?;
        let t = serde_json::to_value(got.spec.context("no spec")?.template.spec)?;
        ensure!(
            host_ports(&t, "containers") == [Value::Null, json!(17002)],
            "template {t}"
        );
        Ok(())
    })
    .await
}

fn daemon(port: u16) -> Result<DaemonSet> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "hn", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "hn"}},
            "template": {"metadata": {"labels": {"app": "hn"}}, "spec": {
                "hostNetwork": true,
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": port}]}],
                "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
            }}}
    }))?)
}

/// The node a daemon pod's node-affinity term names.
fn affinity_node(p: &Pod) -> Option<String> {
    let v = serde_json::to_value(p.spec.as_ref()?.affinity.as_ref()?).ok()?;
    let terms =
        &v["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    ensure_one_term(terms)
}

fn ensure_one_term(terms: &Value) -> Option<String> {
    let want = |n: &str| json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n]}]}]);
    let n = terms.pointer("/0/matchFields/0/values/0")?.as_str()?;
    (terms == &want(n)).then(|| n.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_pods_wait_for_the_scheduler_which_honours_affinity_and_host_ports() -> Result<()>
{
    run_test(|logs| async move {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let cp = json!({"node-role.kubernetes.io/control-plane": ""});
        let taint = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
        create_nodes(&c, vec![
            node("m1", cp.clone(), taint.clone(), true)?,
            node("m2", cp.clone(), taint.clone(), true)?,
            node("w1", json!({}), json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]), true)?,
        ]).await?;
        let port = free_port()?;
        // Already on m2 and holding the daemon's port (TCP on 0.0.0.0, through defaulting).
        let holder: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "holder", "namespace": "kube-system"},
            "spec": {"nodeName": "m2", "hostNetwork": true,
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": port}]}]}}))?;
        let pods: Api<Pod> = Api::namespaced(c.clone(), "kube-system");
        pods.create(&PostParams::default(), &holder).await?;

        let _cm = Proc::start(CM, &flags(&h, &[]), "cm", &logs)?;
        Api::<DaemonSet>::namespaced(c.clone(), "kube-system")
            .create(&PostParams::default(), &daemon(port)?).await?;
        let daemons = || async {
            let all = active_pods(&c, "kube-system", "app=hn").await?;
            let mut by: Vec<(String, String)> = all.iter()
                .map(|p| (affinity_node(p).unwrap_or_default(), node_of(p))).collect();
            by.sort();
            Ok::<_, anyhow::Error>((all, by))
        };
        eventually("one unbound daemon pod per master, each pinned by affinity", STEP, || async {
            let (_, by) = daemons().await?;
            ensure!(by == [("m1".into(), String::new()), ("m2".into(), String::new())], "{by:?}");
            Ok(())
        }).await?;
        // No scheduler: nobody binds them.
        holds("daemon pods stay unbound without a scheduler", Duration::from_secs(2), || async {
            let (_, by) = daemons().await?;
            ensure!(by.iter().all(|(_, bound)| bound.is_empty()), "{by:?}");
            Ok(())
        }).await?;

        let _sched = Proc::start(SCHED, &flags(&h, &["--authentication-kubeconfig=/x", "--authorization-kubeconfig=/x"]), "sched", &logs)?;
        eventually("m1's daemon bound to m1", STEP, || async {
            let (_, by) = daemons().await?;
            ensure!(by.contains(&("m1".into(), "m1".into())), "{by:?}");
            Ok(())
        }).await?;
        let message = eventually("m2's daemon unschedulable: its port is held there", STEP, || async {
            let (all, _) = daemons().await?;
            let p = all.iter().find(|p| affinity_node(p).as_deref() == Some("m2")).context("no m2 daemon")?;
            ensure!(node_of(p).is_empty(), "bound to {}", node_of(p));
            let conds = p.status.clone().and_then(|s| s.conditions).unwrap_or_default();
            let c = conds.into_iter().find(|c| c.type_ == "PodScheduled").context("no PodScheduled")?;
            ensure!(c.status == "False" && c.reason.as_deref() == Some("Unschedulable"), "{c:?}");
            c.message.context("no message")
        }).await?;
        ensure!(message.starts_with("0/3 nodes are available:")
            && message.contains("1 node(s) didn't have free ports for the requested pod ports")
            && message.contains("node(s) didn't match Pod's node affinity/selector"), "message {message}");
        Ok(())
    })
    .await
}
