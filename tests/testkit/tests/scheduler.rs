//! `fake-scheduler` (with `fake-controller-manager` making the pods) as child processes
//! against a real etcd and the fake api-server: Deployment pods bound to matching,
//! Ready nodes and spread, a replacement bound too, a pod no node tolerates left
//! pending with `PodScheduled=False/Unschedulable`, and a pod pinned by node affinity.

#[path = "controllers_support.rs"]
mod support;

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use serde_json::json;
use support::*;

const CM: &str = env!("CARGO_BIN_EXE_fake-controller-manager");
const SCHED: &str = env!("CARGO_BIN_EXE_fake-scheduler");

fn masters_deployment() -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cp", "namespace": "kube-system"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "cp"}},
            "template": {"metadata": {"labels": {"app": "cp"}}, "spec": {
                "containers": [{"name": "cp", "image": "cp:1"}],
                "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
                "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
            }}}
    }))?)
}

fn bare_pod(name: &str, spec: serde_json::Value) -> Result<Pod> {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "x"}]);
    Ok(serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )?)
}

/// The pods of `cp`, failing unless all are bound and on `want` (sorted).
async fn cp_on(c: &kube::Client, want: &[&str]) -> Result<Vec<Pod>> {
    let pods = active_pods(c, "kube-system", "app=cp").await?;
    let mut nodes: Vec<String> = pods.iter().map(node_of).collect();
    nodes.sort();
    ensure!(nodes == want, "cp pods on {nodes:?}, want {want:?}");
    Ok(pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_binds_to_fitting_nodes_and_reports_unschedulable() -> Result<()> {
    run_test(|logs| async move {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let cp = json!({"node-role.kubernetes.io/control-plane": ""});
        let cp_taint = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
        create_nodes(&c, vec![
            node("m1", cp.clone(), cp_taint.clone(), true)?,
            node("m2", cp.clone(), cp_taint.clone(), true)?,
            // Not Ready, with the taint the node lifecycle controller gives it: the
            // scheduler reads readiness only through taints, as kube-scheduler does.
            node("m3-notready", cp.clone(), json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]), false)?,
            node("w1", json!({"pool": "workers"}), json!([]), true)?,
            node("w2", json!({"pool": "workers"}), json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]), true)?,
        ]).await?;
        let _cm = Proc::start(CM, &flags(&h, &[]), "cm", &logs)?;
        let _sched = Proc::start(SCHED, &flags(&h, &["--authentication-kubeconfig=/x", "--authorization-kubeconfig=/x"]), "sched", &logs)?;

        Api::<Deployment>::namespaced(c.clone(), "kube-system").create(&PostParams::default(), &masters_deployment()?).await?;
        let pods = eventually("cp pods spread over m1 and m2", STEP, || cp_on(&c, &["m1", "m2"])).await?;
        let victim = pods.first().map(name_of).context("no pod")?;
        Api::<Pod>::namespaced(c.clone(), "kube-system").delete(&victim, &Default::default()).await?;
        eventually("the replacement bound where the victim was", STEP, || async {
            let pods = cp_on(&c, &["m1", "m2"]).await?;
            ensure!(pods.iter().all(|p| name_of(p) != victim), "{victim} still there");
            Ok(())
        }).await?;

        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        // w2's taint is not tolerated, the masters' neither, w1 is excluded by affinity.
        let stuck = bare_pod("stuck", json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["w1"]}]}]}}}}))?;
        pods.create(&PostParams::default(), &stuck).await?;
        let pinned = bare_pod("pinned", json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w2"]}]}]}}}}))?;
        pods.create(&PostParams::default(), &pinned).await?;
        eventually("pinned bound to w2", STEP, || async {
            let p = pods.get("pinned").await?;
            ensure!(node_of(&p) == "w2", "on {:?}", node_of(&p));
            Ok(())
        }).await?;
        let message = eventually("stuck marked unschedulable", STEP, || async {
            let p = pods.get("stuck").await?;
            ensure!(node_of(&p).is_empty(), "stuck was bound to {}", node_of(&p));
            let conds = p.status.and_then(|s| s.conditions).unwrap_or_default();
            let c = conds.into_iter().find(|c| c.type_ == "PodScheduled").context("no PodScheduled condition")?;
            ensure!(c.status == "False" && c.reason.as_deref() == Some("Unschedulable"), "{c:?}");
            c.message.context("no message")
        }).await?;
        ensure!(message.starts_with("0/5 nodes are available:") && message.contains("untolerated taint {gpu: yes}"),
            "message {message}");
        Ok(())
    })
    .await
}

/// One plain-HTTP GET; the status line and body.
fn http_get(addr: &str, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_binds_the_node_ip_for_an_unspecified_address() -> Result<()> {
    run_test(|logs| async move {
        let h = Harness::start().await?;
        let port = free_port()?;
        let mut args = flags(&h, &["--bind-address=0.0.0.0", "--leader-elect=false"]);
        args.push(format!("--secure-port={port}"));
        let env = [("KUBEBOOT_TESTKIT_NODE_IP", "127.0.0.2")];
        let _s = Proc::start_env(SCHED, &args, &env, "sched", &logs)?;
        let reply = eventually("/healthz on 127.0.0.2", STEP, || async {
            http_get(&format!("127.0.0.2:{port}"), "/healthz")
        })
        .await?;
        ensure!(
            reply.starts_with("HTTP/1.1 200") && reply.ends_with("ok"),
            "{reply}"
        );
        ensure!(
            http_get(&format!("127.0.0.1:{port}"), "/healthz").is_err(),
            "also listening on 127.0.0.1"
        );
        Ok(())
    })
    .await
}

#[test]
fn scheduler_flags() -> Result<()> {
    ensure!(Command::new(SCHED).arg("--help").output()?.status.success());
    let bad = Command::new(SCHED)
        .arg("--cluster-cidr=10.0.0.0/8")
        .output()?;
    ensure!(bad.status.code() == Some(2), "{:?}", bad.status);
    Ok(())
}
