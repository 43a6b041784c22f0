//! The checkpointer's whole life against the doubles: a fake-apiserver (real etcd) and a
//! fake-kubelet whose node filesystem is a temp dir, with `kubeboot checkpoint` running
//! beside the kubelet as the systemd unit would, its paths under the node root and
//! `--host-checkpoint-dir` saying where the kubelet sees them.
//!
//! A checkpointed parent mounting a Secret (items, modes), a ConfigMap and a projected
//! volume (service-account token, downward API, ConfigMap) is saved with its data; with
//! the api-server stopped and the kubelet restarted (so the parent no longer runs), its
//! checkpoint is activated and the kubelet runs it as a static pod that reads the saved
//! data through the manifest's hostPaths; with the api-server back the parent runs again
//! and the checkpoint is deactivated; once the parent is deleted, after the grace period
//! every file of its checkpoint is gone while the checkpointer's own stays.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::apiserver::{ApiServer, Config};
use kubeboot_testkit::kubelet::harness::KubeletOptions;
use serde_json::json;

mod checkpoint_support;

use checkpoint_support::{
    Daemon, fake_kubelet, free_port, kubelet_pods, mode, running, start_kubelet, until,
};

const TEST_DEADLINE: Duration = Duration::from_secs(300);
const SECRET_VALUE: &str = "s3cret-value";
const SELF_POD: &str = "pod-checkpointer-abcde";

/// The claims of a JWT, unverified (the api-server verified it when it issued it).
fn jwt_claims(token: &str) -> Result<serde_json::Value> {
    let part = token.split('.').nth(1).context("no claims")?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part)?;
    Ok(serde_json::from_slice(&raw)?)
}

fn objects() -> Result<(ServiceAccount, Secret, ConfigMap, Pod, Pod)> {
    let sa = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}}))?;
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "web-secret", "namespace": "default"},
        "stringData": {"password": SECRET_VALUE, "key.pem": "KEY", "unused": "x"}
    }))?;
    let cm = serde_json::from_value(json!({
        "metadata": {"name": "web-config", "namespace": "default"},
        "data": {"settings.conf": "mode=fast\n"}
    }))?;
    let checkpoint = json!({"checkpointer.alpha.coreos.com/checkpoint": "true"});
    let parent = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "annotations": checkpoint},
        "spec": {
            "nodeName": "node1",
            "serviceAccountName": "web",
            "containers": [{
                "name": "web", "image": "tailer",
                "command": ["tail", "-f", "/etc/secret/password", "/etc/config/settings.conf", "/var/run/token/name"],
                "volumeMounts": [
                    {"name": "secret", "mountPath": "/etc/secret"},
                    {"name": "config", "mountPath": "/etc/config"},
                    {"name": "token", "mountPath": "/var/run/token"}
                ]
            }],
            "volumes": [
                {"name": "secret", "secret": {"secretName": "web-secret", "defaultMode": 0o440, "items": [
                    {"key": "password", "path": "password"},
                    {"key": "key.pem", "path": "tls/key.pem", "mode": 0o400}
                ]}},
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "token", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"configMap": {"name": "web-config", "items": [{"key": "settings.conf", "path": "settings.conf"}]}}
                ]}}
            ]
        }
    }))?;
    let own = serde_json::from_value(json!({
        "metadata": {"name": SELF_POD, "namespace": "kube-system", "annotations": checkpoint,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "pod-checkpointer",
                "uid": "ds-uid", "controller": true}]},
        "spec": {"nodeName": "node1", "automountServiceAccountToken": false, "containers": [{"name": "c", "image": "sleeper", "command": ["sleep", "600"]}]}
    }))?;
    Ok((sa, secret, cm, parent, own))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_saved_activated_deactivated_and_removed() -> Result<()> {
    let kubelet_bin = tokio::task::spawn_blocking(fake_kubelet).await?;
    tokio::time::timeout(TEST_DEADLINE, lifecycle(kubelet_bin))
        .await
        .context("test deadline")?
}

async fn lifecycle(kubelet_bin: PathBuf) -> Result<()> {
    let mut api_config: Option<Config> = None;
    let h = Harness::start_with(|c, _| {
        api_config = Some(c.clone());
        Ok(())
    })
    .await?;
    let mut api_config = api_config.context("config")?;
    let Harness {
        server,
        etcd: _etcd,
        kubeconfig,
        dir: _api_dir,
        pki,
    } = h;
    api_config.secure_port = server.addr().port();
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?,
    )?;
    let (sa, secret, cm, parent, own) = objects()?;
    let pp = PostParams::default();
    Api::<ServiceAccount>::namespaced(client.clone(), "default")
        .create(&pp, &sa)
        .await?;
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&pp, &secret)
        .await?;
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&pp, &cm)
        .await?;
    // What the controller-manager's root CA publisher makes (none runs here): the token
    // volume the api-server's ServiceAccount admission adds to the parent reads it.
    let root_ca = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "default"},
        "data": {"ca.crt": std::fs::read_to_string(&pki.ca_cert)?}});
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&pp, &serde_json::from_value(root_ca)?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&pp, &parent).await?;
    Api::<Pod>::namespaced(client.clone(), "kube-system")
        .create(&pp, &own)
        .await?;

    let work = tempfile::tempdir()?;
    let root = work.path().join("node1");
    let (port, ro_port) = (free_port(), free_port());
    // The node's containerd socket, served by the fake kubelet from its process table.
    let cri = root.join("run/containerd/containerd.sock");
    let kubelet_opts = KubeletOptions {
        image_map: vec![
            ("sleeper".into(), PathBuf::from("/bin/sleep")),
            ("tailer".into(), PathBuf::from("/usr/bin/tail")),
        ],
        kubeconfig: Some(kubeconfig.clone()),
        node_root: Some(root.clone()),
        // Fixed ports, so the checkpointer finds the restarted kubelet.
        extra_args: vec![
            format!("--port={port}"),
            format!("--read-only-port={ro_port}"),
            format!("--container-runtime-endpoint=unix://{}", cri.display()),
        ],
        ..Default::default()
    };
    let mut kubelet = start_kubelet(&kubelet_bin, kubelet_opts.clone()).await?;
    until("the parent running", || {
        running(&kubelet_pods(ro_port), "web").then_some(())
    })
    .await
    .with_context(|| kubelet.log_tail())?;

    let etc = root.join("etc/kubernetes");
    let log = work.path().join("checkpoint.log");
    let mut daemon = Daemon {
        child: Some(
            Command::new(env!("CARGO_BIN_EXE_kubeboot"))
                .arg("checkpoint")
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .arg("--node-name=node1")
                .arg(format!("--pod-name={SELF_POD}"))
                .arg("--pod-namespace=kube-system")
                .arg(format!(
                    "--pod-manifest-path={}",
                    etc.join("manifests").display()
                ))
                .arg(format!(
                    "--checkpoint-dir={}",
                    etc.join("checkpoints").display()
                ))
                .arg("--host-checkpoint-dir=/etc/kubernetes/checkpoints")
                // What runs comes from the CRI socket alone (the test reads the
                // read-only port itself).
                .arg(format!("--cri-socket=unix://{}", cri.display()))
                .arg("--kubelet-url=")
                .arg(format!(
                    "--lock-file={}",
                    root.join("var/run/kubeboot/checkpointer.lock").display()
                ))
                .args([
                    // The parent lives in `default`, which must be allowed explicitly.
                    "--checkpoint-namespaces=kube-system,default",
                    "--interval=300ms",
                    "--checkpoint-grace-period=2s",
                    "--request-timeout=2s",
                ])
                .env_remove("NOTIFY_SOCKET")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()?,
        ),
        log,
    };

    // Saved, with its data; not active. The checkpointer's own checkpoint is active.
    let ck = etc.join("checkpoints");
    let saved = ck.join("saved/kubeboot-checkpoint_default_web.json");
    let active = etc.join("manifests/kubeboot-checkpoint_default_web.json");
    let data = |rel: &str| ck.join(rel);
    until("the parent's checkpoint saved", || {
        (saved.is_file() && data("projected/default/web/token/token").is_file()).then_some(())
    })
    .await
    .with_context(|| daemon.log())?;
    let read = |rel: &str| std::fs::read_to_string(data(rel)).unwrap_or_default();
    assert_eq!(read("secrets/default/web/secret/password"), SECRET_VALUE);
    assert_eq!(mode(&data("secrets/default/web/secret/password")), 0o440);
    assert_eq!(read("secrets/default/web/secret/tls/key.pem"), "KEY");
    assert_eq!(mode(&data("secrets/default/web/secret/tls/key.pem")), 0o400);
    assert!(
        !data("secrets/default/web/secret/unused").exists(),
        "a key not in items"
    );
    assert_eq!(
        read("configmaps/default/web/config/settings.conf"),
        "mode=fast\n"
    );
    assert_eq!(
        mode(&data("configmaps/default/web/config/settings.conf")),
        0o644
    );
    assert_eq!(read("projected/default/web/token/name"), "web");
    assert_eq!(
        read("projected/default/web/token/settings.conf"),
        "mode=fast\n"
    );
    assert_eq!(mode(&data("projected/default/web/token/token")), 0o600);
    let token = read("projected/default/web/token/token");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    // Bound to this node's Node object and as short-lived as the projection asks
    // (issue 12, finding 4): never an unbound year.
    let node = Api::<Node>::all(client.clone()).get("node1").await?;
    let claims = jwt_claims(&token)?;
    assert_eq!(
        claims["kubernetes.io"]["node"],
        json!({"name": "node1", "uid": node.metadata.uid}),
        "{claims}"
    );
    assert!(claims["kubernetes.io"]["pod"].is_null(), "{claims}");
    let life = claims["exp"].as_i64().zip(claims["iat"].as_i64());
    assert_eq!(life.map(|(e, i)| e - i), Some(3600), "{claims}");
    assert_eq!(mode(&data("secrets/default/web/secret")), 0o700);
    assert_eq!(mode(&ck), 0o700);
    assert_eq!(mode(&saved), 0o600);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&saved)?)?;
    let vols = manifest["spec"]["volumes"].as_array().context("volumes")?;
    let paths: Vec<&str> = vols
        .iter()
        .map(|v| v["hostPath"]["path"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        paths[..3],
        [
            "/etc/kubernetes/checkpoints/secrets/default/web/secret",
            "/etc/kubernetes/checkpoints/configmaps/default/web/config",
            "/etc/kubernetes/checkpoints/projected/default/web/token",
        ]
    );
    // The token volume the api-server's ServiceAccount admission added, with its CA.
    let access = paths.get(3).context("the kube-api-access volume")?;
    assert!(
        access.starts_with("/etc/kubernetes/checkpoints/projected/default/web/kube-api-access-"),
        "{paths:?}"
    );
    assert_eq!(paths.len(), 4, "{paths:?}");
    let access_dir = access.trim_start_matches("/etc/kubernetes/checkpoints/");
    assert_eq!(
        read(&format!("{access_dir}/ca.crt")),
        std::fs::read_to_string(&pki.ca_cert)?
    );
    assert_eq!(read(&format!("{access_dir}/namespace")), "default");
    kubeboot_testkit::validate::assert_valid(std::slice::from_ref(&saved));
    assert!(!active.exists(), "a running parent's checkpoint is active");
    let own_active = etc.join(format!(
        "manifests/kubeboot-checkpoint_kube-system_{SELF_POD}.json"
    ));
    until("the checkpointer's own checkpoint running", || {
        (own_active.is_file() && running(&kubelet_pods(ro_port), &format!("{SELF_POD}-node1")))
            .then_some(())
    })
    .await?;

    // The api-server goes, and the kubelet restarts: nothing runs the parent.
    drop(server);
    kubelet.terminate(Duration::from_secs(20))?;
    let kubelet2 = start_kubelet(&kubelet_bin, kubelet_opts.clone()).await?;
    until(
        "the checkpoint activated and running as a static pod",
        || (active.is_file() && running(&kubelet_pods(ro_port), "web-node1")).then_some(()),
    )
    .await
    .with_context(|| format!("{}\n{}", daemon.log(), kubelet2.log_tail()))?;
    assert_eq!(std::fs::read(&active)?, std::fs::read(&saved)?);
    assert_eq!(mode(&active), 0o600);
    until("the static pod reading the saved data", || {
        let out = kubelet2.container_log("default", "web-node1", "web");
        (out.contains(SECRET_VALUE) && out.contains("mode=fast")).then_some(())
    })
    .await
    .with_context(|| kubelet2.log_tail())?;

    // The api-server comes back: the kubelet runs the parent again, the checkpoint goes.
    let mut restarted = None;
    for _ in 0..50 {
        match ApiServer::start(api_config.clone()).await {
            Ok(s) => {
                restarted = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let _server = restarted.context("the api-server did not start again on its port")?;
    until("the checkpoint deactivated and stopped", || {
        let pods = kubelet_pods(ro_port);
        let parent_listed = pods
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("web"));
        let static_gone = !pods
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("web-node1"));
        (!active.exists() && parent_listed && static_gone).then_some(())
    })
    .await
    .with_context(|| format!("{}\n{}", daemon.log(), kubelet2.log_tail()))?;
    assert!(saved.is_file());

    // The parent is deleted: after the grace period nothing of its checkpoint is left.
    pods.delete("web", &DeleteParams::default()).await?;
    until("the checkpoint removed", || {
        let gone = ["secrets", "configmaps", "projected"]
            .iter()
            .all(|k| !ck.join(k).join("default/web").exists());
        (gone && !saved.exists() && !active.exists()).then_some(())
    })
    .await
    .with_context(|| daemon.log())?;
    assert!(
        own_active.is_file(),
        "the checkpointer's own checkpoint was removed"
    );
    assert!(
        ck.join(format!(
            "saved/kubeboot-checkpoint_kube-system_{SELF_POD}.json"
        ))
        .is_file()
    );

    // Read once it stopped: the last action's line may follow its files by a moment.
    let code = daemon.stop()?;
    let text = daemon.log();
    assert_eq!(code, Some(0), "{text}");
    for line in [
        "saved the checkpoint of default/web",
        "activated the checkpoint of default/web",
        "deactivated the checkpoint of default/web",
        "removed the checkpoint of default/web",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
    assert!(
        !text.contains(SECRET_VALUE),
        "a secret value in the log:\n{text}"
    );
    assert!(!text.contains(&token), "a token in the log");
    let leftovers: Vec<_> = std::fs::read_dir(etc.join("manifests"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(kubelet2);
    Ok(())
}
