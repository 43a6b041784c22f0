//! fake-kubelet volumes and node simulation, observed from inside the containers: a shell
//! container copies what it sees at its mount paths (passed as argv, which the kubelet
//! translates) into a hostPath, and the test reads that hostPath under the node's
//! `--root-fs`. Nothing here touches the host's /etc or /var: every node is a temp dir.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::kubelet::harness::{FakeKubelet, KubeletOptions};
use serde_json::json;

const TEST_DEADLINE: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(30);

/// A kubelet simulating node `name` with its filesystem under `root/nodes/<name>`.
fn node(root: &Path, name: &str, ip: [u8; 4], kubeconfig: Option<PathBuf>) -> KubeletOptions {
    KubeletOptions {
        node_name: name.into(),
        node_ip: ip.into(),
        node_root: Some(root.join("nodes").join(name)),
        image_map: vec![("busybox".into(), PathBuf::from("/bin/sh"))],
        kubeconfig,
        ..Default::default()
    }
}

async fn start(opts: KubeletOptions) -> Result<FakeKubelet> {
    let bin = env!("CARGO_BIN_EXE_fake-kubelet");
    tokio::task::spawn_blocking(move || FakeKubelet::start(bin, opts)).await?
}

/// Polls `f` until it returns `Some`, or fails naming `what` (with the kubelet's log).
async fn until<T, F: Future<Output = Option<T>>>(
    what: &str,
    k: &FakeKubelet,
    mut f: impl FnMut() -> F,
) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = f().await {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {WAIT:?} waiting for {what}\nkubelet log:\n{}",
                k.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// A busybox container running `script` with `args` as `$1…`, then sleeping.
fn sh(script: &str, args: &[&str]) -> serde_json::Value {
    let mut cmd = vec![
        json!("/bin/sh"),
        json!("-c"),
        json!(format!("{script}; exec sleep 300")),
        json!("sh"),
    ];
    cmd.extend(args.iter().map(|a| json!(a)));
    json!({"name": "c", "image": "busybox", "command": cmd})
}

fn waiting_reason(p: &Pod) -> Option<(String, String)> {
    let st = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let w = st.state.as_ref()?.waiting.as_ref()?;
    Some((w.reason.clone()?, w.message.clone().unwrap_or_default()))
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pod_host_paths_resolve_under_the_node_root_fs() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let t = tempfile::tempdir()?;
        let root = t.path().join("nodes/master-1");
        std::fs::create_dir_all(root.join("etc/x"))?;
        std::fs::write(root.join("etc/x/file"), "hello\n")?;
        let k = start(node(t.path(), "master-1", [127, 0, 0, 1], None)).await?;
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "copy", "namespace": "kube-system"},
            "spec": {"containers": [sh(r#"cat "$1" > "$2/copy"; echo "$KUBEBOOT_TESTKIT_NODE_IP" > "$2/ip""#, &["/etc/x/file", "/var/out"])],
                "volumes": [{"name": "x", "hostPath": {"path": "/etc/x", "type": "Directory"}},
                    {"name": "out", "hostPath": {"path": "/var/out", "type": "DirectoryOrCreate"}}]}});
        let mounted = |mut c: serde_json::Value| {
            c["volumeMounts"] = json!([{"name": "x", "mountPath": "/etc/x"}, {"name": "out", "mountPath": "/var/out"}]);
            c
        };
        let mut pod = pod;
        pod["spec"]["containers"][0] = mounted(pod["spec"]["containers"][0].clone());
        k.write_manifest("copy.yaml", &serde_json::to_string(&pod)?)?;
        let out = root.join("var/out");
        until("the container's copy of /etc/x/file", &k, || async { read(out.join("copy")).filter(|s| s == "hello") }).await?;
        assert_eq!(read(out.join("ip")).as_deref(), Some("127.0.0.1"));

        // A `Directory` hostPath that does not exist holds the pod until it does.
        let mut late = pod.clone();
        late["metadata"]["name"] = json!("late");
        late["spec"]["volumes"][0]["hostPath"]["path"] = json!("/etc/late");
        late["spec"]["containers"][0] = mounted(sh(r#"cat "$1" > "$2/late""#, &["/etc/x/file", "/var/out"]));
        k.write_manifest("late.yaml", &serde_json::to_string(&late)?)?;
        let reason = |pods: &[Pod]| pods.iter().find(|p| p.metadata.name.as_deref() == Some("late-master-1")).and_then(waiting_reason);
        let (why, msg) = tokio::task::block_in_place(|| k.wait_for("late waiting", WAIT, |p| reason(p).filter(|(r, _)| r == "CreateContainerConfigError")))?;
        assert!(msg.contains("Directory"), "{why}: {msg}");
        std::fs::create_dir_all(root.join("etc/late"))?;
        std::fs::write(root.join("etc/late/file"), "late\n")?;
        until("late pod to start", &k, || async { read(out.join("late")).filter(|s| s == "late") }).await?;

        // Static pods may not reference API objects (kubernetes/kubernetes#131837).
        let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers: [{name: c, image: busybox}]\n  volumes: [{name: s, secret: {secretName: s}}]\n";
        k.write_manifest("bad.yaml", bad)?;
        until("the refusal in the kubelet log", &k, || async { k.log_tail().contains("static pods may not reference secrets").then_some(()) }).await?;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pod_secret_and_config_map_volumes_with_items_modes_and_refresh() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let t = tempfile::tempdir()?;
        let root = t.path().join("nodes/worker-1");
        let k = start(node(t.path(), "worker-1", [127, 0, 0, 1], Some(h.kubeconfig.clone()))).await?;
        let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
        let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let pp = PostParams::default();
        secrets.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"a": "A", "b": "B", "skip": "x"}}))?).await?;
        cms.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "cm"}, "data": {"k": "K"}, "binaryData": {"bin": "AAEC"}}))?).await?;
        let script = r#"cat "$1/sub/a.txt" > "$4/a"; stat -L -c %a "$1/sub/a.txt" > "$4/a.mode"; stat -L -c %a "$1/b" > "$4/b.mode"; cat "$2" > "$4/k"; ls "$3" > "$4/opt"; test -e "$5" && echo yes > "$4/late""#;
        let mut ctr = sh(script, &["/etc/s", "/etc/cm/k", "/etc/opt", "/out", "/etc/late/x"]);
        ctr["volumeMounts"] = json!([{"name": "s", "mountPath": "/etc/s"}, {"name": "cm", "mountPath": "/etc/cm"},
            {"name": "opt", "mountPath": "/etc/opt"}, {"name": "late", "mountPath": "/etc/late"}, {"name": "out", "mountPath": "/out"}]);
        let pod = json!({"metadata": {"name": "vols"}, "spec": {"nodeName": "worker-1", "automountServiceAccountToken": false, "containers": [ctr],
            "volumes": [{"name": "s", "secret": {"secretName": "s", "defaultMode": 0o440, "items": [{"key": "a", "path": "sub/a.txt", "mode": 0o600}, {"key": "b", "path": "b"}]}},
                {"name": "cm", "configMap": {"name": "cm"}},
                {"name": "opt", "secret": {"secretName": "nope", "optional": true}},
                {"name": "late", "secret": {"secretName": "late"}},
                {"name": "out", "emptyDir": {}}]}});
        pods.create(&pp, &serde_json::from_value(pod)?).await?;

        let (reason, msg) = until("CreateContainerConfigError for the missing secret", &k, || async {
            pods.get_opt("vols").await.ok()?.as_ref().and_then(waiting_reason).filter(|(r, _)| r == "CreateContainerConfigError")
        })
        .await?;
        assert!(msg.contains("late"), "{reason}: {msg}");
        secrets.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "late"}, "stringData": {"x": "1"}}))?).await?;
        let p = until("vols Running", &k, || async { pods.get_opt("vols").await.ok()?.filter(|p| phase(p) == Some("Running")) }).await?;
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let vols = root.join("var/lib/kubelet/pods").join(&uid).join("volumes");
        let out = vols.join("out");
        until("the container's view", &k, || async { read(out.join("late")) }).await?;
        assert_eq!(read(out.join("a")).as_deref(), Some("A"));
        assert_eq!(read(out.join("a.mode")).as_deref(), Some("600"));
        assert_eq!(read(out.join("b.mode")).as_deref(), Some("440"));
        assert_eq!(read(out.join("k")).as_deref(), Some("K"));
        assert_eq!(read(out.join("opt")).as_deref(), Some(""));
        assert_eq!(std::fs::read(vols.join("cm/bin"))?, [0u8, 1, 2]);
        assert!(!vols.join("s/skip").exists(), "items select keys");

        let patch = Patch::Merge(json!({"stringData": {"a": "A2"}}));
        secrets.patch("s", &PatchParams::default(), &patch).await?;
        until("the refreshed secret", &k, || async { read(vols.join("s/sub/a.txt")).filter(|s| s == "A2") }).await?;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_token_is_mounted_or_the_pod_says_why() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let h = Harness::start().await?;
        let c = h.kube_client().await?;
        let t = tempfile::tempdir()?;
        let root = t.path().join("nodes/worker-1");
        let k = start(node(t.path(), "worker-1", [127, 0, 0, 1], Some(h.kubeconfig.clone()))).await?;
        let pp = PostParams::default();
        let sas: Api<ServiceAccount> = Api::namespaced(c.clone(), "default");
        sas.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "robot"}}))?).await?;
        let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
        let mut ctr = sh(r#"cat "$1/namespace" > "$2/ns"; cat "$1/ca.crt" > "$2/ca"; cat "$1/token" > "$2/token""#, &[sa, "/out"]);
        ctr["volumeMounts"] = json!([{"name": "out", "mountPath": "/out"}]);
        let pod = json!({"metadata": {"name": "robot"}, "spec": {"nodeName": "worker-1", "serviceAccountName": "robot",
            "containers": [ctr], "volumes": [{"name": "out", "emptyDir": {}}]}});
        let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
        let created = pods.create(&pp, &serde_json::from_value(pod)?).await?;
        // The api-server's ServiceAccount admission put the token volume into the spec.
        let vols = created.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
        assert!(vols.iter().any(|v| v.name.starts_with("kube-api-access-")), "{vols:?}");
        // Its ca.crt comes from kube-root-ca.crt, which the controller-manager publishes;
        // none runs here, so the pod waits and says what for.
        until("robot waiting for kube-root-ca.crt", &k, || async {
            let p = pods.get_opt("robot").await.ok()??;
            waiting_reason(&p).is_some_and(|(_, m)| m.contains("kube-root-ca.crt")).then_some(())
        })
        .await?;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(c.clone(), "default");
        let ca = std::fs::read_to_string(&h.pki.ca_cert)?;
        cms.create(&pp, &serde_json::from_value(json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca}}))?).await?;
        // Until the api-server serves TokenRequest the pod waits and says so.
        let p = until("robot Running, or waiting on TokenRequest", &k, || async {
            let p = pods.get_opt("robot").await.ok()??;
            let told = waiting_reason(&p).is_some_and(|(_, m)| m.contains("TokenRequest"));
            (phase(&p) == Some("Running") || told).then_some(p)
        })
        .await?;
        if phase(&p) != Some("Running") {
            eprintln!("TokenRequest not served yet: {:?}", waiting_reason(&p));
            return Ok(());
        }
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let out = root.join("var/lib/kubelet/pods").join(&uid).join("volumes/out");
        let token = until("the container's copy of the token", &k, || async { read(out.join("token")).filter(|t| !t.is_empty()) }).await?;
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        assert_eq!(read(out.join("ns")).as_deref(), Some("default"));
        assert_eq!(read(out.join("ca")), read(&h.pki.ca_cert));
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kubelets_on_two_node_ips_with_default_ports() -> Result<()> {
    tokio::time::timeout(TEST_DEADLINE, async {
        let t = tempfile::tempdir()?;
        let opts = |name: &str, ip| KubeletOptions { default_ports: true, read_only_port: true, ..node(t.path(), name, ip, None) };
        let a = start(opts("master-1", [127, 0, 0, 1])).await?;
        let b = start(opts("master-2", [127, 0, 0, 2])).await?;
        for k in [&a, &b] {
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "id", "namespace": "kube-system"},
                "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox", "command": ["/bin/sh", "-c", "echo \"$KUBEBOOT_TESTKIT_NODE_IP\" > \"$1\"; exec sleep 300", "sh", "/etc/kubernetes/ip"],
                    "volumeMounts": [{"name": "k", "mountPath": "/etc/kubernetes"}]}],
                    "volumes": [{"name": "k", "hostPath": {"path": "/etc/kubernetes", "type": "Directory"}}]}});
            k.write_manifest("id.yaml", &serde_json::to_string(&pod)?)?;
        }
        for (k, name, ip) in [(&a, "id-master-1", "127.0.0.1"), (&b, "id-master-2", "127.0.0.2")] {
            assert_eq!(k.port, 10250);
            let running = tokio::task::block_in_place(|| {
                k.wait_for(name, WAIT, |pods| {
                    let names: Vec<_> = pods.iter().filter_map(|p| p.metadata.name.clone()).collect();
                    pods.iter().find(|p| phase(p) == Some("Running")).map(|_| names)
                })
            })?;
            assert_eq!(running, [name], "each kubelet reports only its own node's pods");
            let pods = tokio::task::block_in_place(|| k.pods_on(k.read_only_port))?;
            let host_ip = pods.first().and_then(|p| p.status.as_ref()?.host_ip.clone());
            assert_eq!(host_ip.as_deref(), Some(ip));
            let written = k.root_fs.join("etc/kubernetes/ip");
            until("the pod's write into its node's /etc/kubernetes", k, || async { read(&written).filter(|s| s == ip) }).await?;
        }
        Ok(())
    })
    .await?
}
