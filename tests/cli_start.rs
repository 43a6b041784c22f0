//! `kubeboot start` as an operator sees it, without a kubelet: the real binary against
//! temp dirs for the static pod dir, the bootstrap secrets and the lock, an asset dir
//! from `kubeboot render`, and either nothing listening at the api-server's address or
//! the fake api-server (real etcd behind it) with no node and no pod ever appearing.
//! What is checked is what the operator sees: exit codes, the one error line, what was
//! installed (and with which modes), what was moved aside, signals and `STATUS=`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{assert_fails, mode_of, stderr, tree};
use kubeboot_testkit::apiserver::harness::Harness;

/// Short waits, so a run against a dead api-server ends in about 3 s.
const FAST: [&str; 6] = [
    "--timeout",
    "3s",
    "--poll-interval",
    "200ms",
    "--request-timeout",
    "1s",
];

/// How long any one `kubeboot` run may take before the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// A node's worth of temp dirs and a rendered asset dir.
struct Node {
    tmp: tempfile::TempDir,
    assets: PathBuf,
    /// The kubelet's static pod dir (not created up front).
    pods: PathBuf,
    /// `--bootstrap-secrets-dir` (not created up front).
    secrets: PathBuf,
    lock: PathBuf,
    /// `https://127.0.0.1:PORT`, where the rendered kubeconfig points.
    api: String,
}

impl Node {
    /// Renders an asset dir whose api-server address nothing listens on.
    fn new() -> Node {
        Self::for_api(&format!("https://127.0.0.1:{}", common::free_port()))
    }

    fn for_api(api: &str) -> Node {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let assets = root.join("assets");
        let out = run(
            &root,
            &[
                "render",
                "--asset-dir",
                assets.to_str().unwrap(),
                "--api-servers",
                api,
            ],
            &[],
        );
        assert!(out.status.success(), "render: {}", stderr(&out));
        Node {
            assets,
            pods: root.join("node/etc/kubernetes/manifests"),
            secrets: root.join("node/etc/kubernetes/bootstrap-secrets"),
            lock: root.join("node/run/kubeboot/start.lock"),
            api: api.to_string(),
            tmp,
        }
    }

    /// `start` args for this node, then `extra`.
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "start",
            "--asset-dir",
            self.assets.to_str().unwrap(),
            "--pod-manifest-path",
            self.pods.to_str().unwrap(),
            "--bootstrap-secrets-dir",
            self.secrets.to_str().unwrap(),
            "--lock-file",
            self.lock.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a
    }

    /// Runs `kubeboot start` with the fast waits plus `extra`.
    fn start(&self, extra: &[&str]) -> Output {
        let mut extra_all: Vec<&str> = FAST.to_vec();
        extra_all.extend_from_slice(extra);
        run(self.tmp.path(), &self.args(&extra_all), &[])
    }

    /// The asset dir's bootstrap manifests: file name → bytes.
    fn bootstrap_manifests(&self) -> BTreeMap<String, Vec<u8>> {
        tree(&self.assets.join("bootstrap-manifests"))
            .into_iter()
            .map(|(k, (_, bytes))| (k, bytes))
            .collect()
    }

    /// Asserts that `start` left nothing on the node.
    fn assert_nothing_installed(&self, what: &str) {
        for dir in [&self.pods, &self.secrets] {
            let entries: Vec<String> = match fs::read_dir(dir) {
                Ok(rd) => rd
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Vec::new(),
            };
            assert!(
                entries.is_empty(),
                "{what}: {} holds {entries:?}",
                dir.display()
            );
        }
        let parent = self.secrets.parent().unwrap();
        if let Ok(rd) = fs::read_dir(parent) {
            let stray: Vec<String> = rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("kubeboot-"))
                .collect();
            assert!(stray.is_empty(), "{what}: left {stray:?} in {parent:?}");
        }
    }

    /// Asserts the bootstrap manifests and secrets are installed exactly and privately,
    /// with the asset dir's kubeconfig.
    fn assert_bootstrap_installed(&self) {
        self.assert_bootstrap_installed_with(&self.assets.join("auth/kubeconfig"));
    }

    /// Like [`Node::assert_bootstrap_installed`], the installed kubeconfig being a copy
    /// of `kubeconfig` (`--kubeconfig` overrides `auth/kubeconfig`).
    fn assert_bootstrap_installed_with(&self, kubeconfig: &Path) {
        let want = self.bootstrap_manifests();
        assert_eq!(want.len(), 3, "render wrote {:?}", want.keys());
        let got = tree(&self.pods);
        let visible: BTreeMap<&String, &(u32, Vec<u8>)> =
            got.iter().filter(|(k, _)| !k.starts_with('.')).collect();
        assert_eq!(
            visible.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            want.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            "static pod dir"
        );
        for (name, bytes) in &want {
            let (mode, installed) = &got[name];
            assert_eq!(installed, bytes, "{name} differs from the asset dir's");
            assert_eq!(*mode, 0o600, "{name} mode {mode:o}");
        }

        let secrets = tree(&self.secrets);
        let kubeconfig = fs::read(kubeconfig).unwrap();
        assert_eq!(secrets["kubeconfig"].1, kubeconfig, "installed kubeconfig");
        let tls = tree(&self.assets.join("tls"));
        assert!(!tls.is_empty());
        for (rel, (_, bytes)) in &tls {
            let (_, installed) = secrets
                .get(rel)
                .unwrap_or_else(|| panic!("tls/{rel} not installed"));
            assert_eq!(installed, bytes, "tls/{rel}");
        }
        assert_eq!(secrets.len(), tls.len() + 1, "{:?}", secrets.keys());
        for (rel, (mode, _)) in &secrets {
            assert_eq!(*mode, 0o600, "secret {rel} mode {mode:o}");
        }
        for dir in dirs_under(&self.secrets) {
            assert_eq!(mode_of(&dir), 0o700, "{} mode", dir.display());
        }
    }
}

/// `dir` and every dir below it.
fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for e in fs::read_dir(&out[i]).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

/// Names in `dir` that `start` made by moving something aside.
fn moved_aside(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".kubeboot-"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Spawns `kubeboot ARGS` in `dir`, with stdout and stderr going to files there (a pipe
/// could fill up and stall it), returning the child and the two paths.
fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, PathBuf, PathBuf) {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let out_path = dir.join(format!("run-{n}.stdout"));
    let err_path = dir.join(format!("run-{n}.stderr"));
    let child = Command::new(env!("CARGO_BIN_EXE_kubeboot"))
        .args(args)
        .current_dir(dir)
        .env_remove("NOTIFY_SOCKET")
        .envs(env.iter().copied())
        .env("KUBEBOOT_LOG", "info,kube_client=off")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn kubeboot");
    (child, out_path, err_path)
}

/// Waits for `child` until `deadline`; kills it and panics past it.
fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: kubeboot did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `kubeboot ARGS` to completion, bounded by [`RUN_DEADLINE`].
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let (mut child, out, err) = spawn(dir, args, env);
    let status = wait_until(
        &mut child,
        Instant::now() + RUN_DEADLINE,
        &format!("{args:?}"),
    );
    Output {
        status,
        stdout: fs::read(out).unwrap(),
        stderr: fs::read(err).unwrap(),
    }
}

/// The `kubeboot: error:` line.
fn error_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("kubeboot: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line: {err}");
    lines[0].to_string()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
fn poll(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_asset_dirs_are_exit_2_naming_the_file_and_install_nothing() {
    let node = Node::new();
    let original = node.assets.clone();
    let work = node.tmp.path().join("bad");

    // Each case: a broken copy of the asset dir, and what the error must say.
    type Break = fn(&Path) -> (String, &'static str);
    let cases: [(&str, Break); 3] = [
        ("missing auth/kubeconfig", |d| {
            fs::remove_file(d.join("auth/kubeconfig")).unwrap();
            (
                d.join("auth/kubeconfig").display().to_string(),
                "No such file",
            )
        }),
        ("bootstrap manifest not YAML", |d| {
            let f = d.join("bootstrap-manifests/bootstrap-kube-scheduler.yaml");
            fs::write(&f, "{ not: [yaml").unwrap();
            (f.display().to_string(), "not a Pod manifest")
        }),
        ("manifests/ file not YAML", |d| {
            let f = d.join("manifests/kube-proxy.yaml");
            fs::write(&f, "kind: ConfigMap\n  : { broken").unwrap();
            (f.display().to_string(), "not valid YAML")
        }),
    ];
    for (name, break_it) in cases {
        let dir = work.join(name.replace(' ', "-").replace('/', ""));
        copy_dir(&original, &dir);
        let (path, reason) = break_it(&dir);
        let mut args = node.args(&FAST);
        args[2] = dir.to_str().unwrap();
        let out = run(node.tmp.path(), &args, &[]);
        assert_fails(&out, 2, &path);
        let line = error_line(&out);
        assert!(line.contains(reason), "{name}: {line}");
        assert_eq!(stderr(&out).lines().count(), 1, "{name}: {}", stderr(&out));
        node.assert_nothing_installed(name);
    }

    let missing = node.tmp.path().join("no-such-assets");
    let mut args = node.args(&FAST);
    args[2] = missing.to_str().unwrap();
    let out = run(node.tmp.path(), &args, &[]);
    assert_fails(&out, 2, missing.to_str().unwrap());
    assert!(
        error_line(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );
    node.assert_nothing_installed("missing asset dir");

    for bad in ["kube-system", "kube-system/", "/kube-apiserver", "a/b/c"] {
        let out = node.start(&["--required-pods", bad]);
        assert_fails(&out, 2, "--required-pods");
        assert!(
            error_line(&out).contains(&format!("{bad:?}")),
            "{}",
            stderr(&out)
        );
        node.assert_nothing_installed(bad);
    }
}

/// A kubeconfig that is not YAML is bad input like the others: it must be found before
/// the bootstrap pods and secrets are put on the node, not after.
#[test]
fn an_unparseable_kubeconfig_is_exit_2_and_installs_nothing() {
    let node = Node::new();
    fs::write(node.assets.join("auth/kubeconfig"), "garbage: [").unwrap();
    let out = node.start(&[]);
    assert_fails(&out, 2, "auth/kubeconfig");
    node.assert_nothing_installed("unparseable kubeconfig");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn an_api_server_that_never_answers_is_exit_1_and_leaves_the_bootstrap_pods() {
    let node = Node::new();
    let began = Instant::now();
    let out = node.start(&[]);
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "a 3 s timeout took {:?}",
        began.elapsed()
    );
    assert_fails(&out, 1, &node.api);
    let line = error_line(&out);
    for want in [
        "gave up after",
        "waiting for the api-server at",
        &format!("bootstrap pods stay in {}", node.pods.display()),
    ] {
        assert!(line.contains(want), "{want:?} missing from: {line}");
    }
    node.assert_bootstrap_installed();
    let first = tree(&node.pods);

    // Again: the same failure, the same files, nothing piled up beside them.
    let out = node.start(&[]);
    assert_fails(&out, 1, &node.api);
    assert_eq!(
        tree(&node.pods),
        first,
        "a second run changed the static pods"
    );
    assert_eq!(moved_aside(&node.pods), Vec::<String>::new());
    assert_eq!(
        moved_aside(node.secrets.parent().unwrap()),
        Vec::<String>::new()
    );
    node.assert_bootstrap_installed();

    let out = node.start(&["--cleanup-on-failure"]);
    assert_fails(&out, 1, &node.api);
    assert!(
        error_line(&out).contains("--cleanup-on-failure removed the bootstrap pods"),
        "{}",
        stderr(&out)
    );
    let left: Vec<String> = tree(&node.pods).into_keys().collect();
    assert!(left.is_empty(), "left in the static pod dir: {left:?}");
    assert!(!node.secrets.exists(), "the secrets dir is still there");
}

#[test]
fn a_different_leftover_is_moved_aside_hidden_and_never_deleted() {
    let node = Node::new();
    fs::create_dir_all(&node.pods).unwrap();
    let leftover = node.pods.join("bootstrap-kube-apiserver.yaml");
    let old = b"# an older bootstrap pod someone left here\nkind: Pod\n";
    fs::write(&leftover, old).unwrap();
    // A leftover secrets dir from another run, with a file the asset dir lacks.
    fs::create_dir_all(&node.secrets).unwrap();
    fs::write(node.secrets.join("old-only"), b"old secret").unwrap();

    let out = node.start(&[]);
    assert_fails(&out, 1, &node.api);
    node.assert_bootstrap_installed();

    let aside = moved_aside(&node.pods);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let name = &aside[0];
    assert!(
        name.starts_with(".bootstrap-kube-apiserver.yaml") && name.contains(".kubeboot-"),
        "the copy must be hidden from the kubelet: {name}"
    );
    assert_eq!(fs::read(node.pods.join(name)).unwrap(), old);
    assert!(
        stderr(&out).contains(name.as_str()),
        "the log does not say where the old copy went: {}",
        stderr(&out)
    );

    let parent = node.secrets.parent().unwrap();
    let aside = moved_aside(parent);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        fs::read(parent.join(&aside[0]).join("old-only")).unwrap(),
        b"old secret"
    );

    // Run again: the moved-aside copies stay as they are and no new ones appear.
    let out = node.start(&[]);
    assert_fails(&out, 1, &node.api);
    assert_eq!(moved_aside(&node.pods), vec![name.clone()]);
    assert_eq!(moved_aside(parent).len(), 1);
}

#[test]
fn a_held_lock_is_exit_4_naming_it_and_installs_nothing() {
    let node = Node::new();
    fs::create_dir_all(node.lock.parent().unwrap()).unwrap();
    let held = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&node.lock)
        .unwrap();
    held.try_lock().unwrap();
    let out = node.start(&[]);
    assert_fails(&out, 4, node.lock.to_str().unwrap());
    node.assert_nothing_installed("lock held");

    drop(held);
    let out = node.start(&[]);
    assert_fails(&out, 1, &node.api);
}

#[test]
fn sigterm_while_waiting_is_exit_1_saying_where_and_leaves_the_pods() {
    let node = Node::new();
    let args = node.args(&[
        "--timeout",
        "5m",
        "--poll-interval",
        "200ms",
        "--request-timeout",
        "1s",
    ]);
    let (mut child, _, err) = spawn(node.tmp.path(), &args, &[]);
    let read_err = || fs::read_to_string(&err).unwrap_or_default();
    let waiting = format!("waiting for the api-server at {}", node.api);
    poll(Duration::from_secs(30), &waiting, || {
        read_err().contains(&waiting)
    });
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_until(&mut child, sent + Duration::from_secs(10), "SIGTERM");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        sent.elapsed()
    );
    let out = Output {
        status,
        stdout: Vec::new(),
        stderr: read_err().into_bytes(),
    };
    assert_fails(&out, 1, "interrupted");
    let line = error_line(&out);
    assert!(
        line.contains(&format!("interrupted during: {waiting}")),
        "{line}"
    );
    node.assert_bootstrap_installed();
}

#[test]
fn waiting_is_reported_to_systemd_as_status() {
    let node = Node::new();
    let sock_path = node.tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let args = node.args(&FAST);
    let (mut child, _, err) = spawn(
        node.tmp.path(),
        &args,
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let want = format!("STATUS=waiting for the api-server at {}", node.api);
    // Read like systemd does, until `start` exits: a reader that stops reading makes
    // the sender block (see the test below).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let status = loop {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            continue;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("start did not exit; got {got:?}");
        }
    };
    assert!(
        got.iter().any(|d| d.contains(&want)),
        "no {want:?} among {got:?}; stderr: {}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    // The waiting line says what is being waited for, not just that it waits.
    assert!(
        got.iter()
            .any(|d| d.contains(&want) && d.contains("(/readyz")),
        "{got:?}"
    );
    assert_eq!(status.code(), Some(1));
}

#[test]
fn a_live_api_server_with_no_live_nodes_gets_the_objects_labels_this_node_then_times_out_naming_the_pods()
 {
    let (rt, harness, node, kubeconfig) = node_on_fake_apiserver();
    let client = rt.block_on(admin_client(&harness.kubeconfig));
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    // A registered Node whose kubelet never renews anything: not live.
    let m1 = serde_json::from_value(serde_json::json!({"metadata": {"name": "m1",
        "labels": {"kubernetes.io/hostname": "m1"}}}))
    .unwrap();
    rt.block_on(nodes.create(&Default::default(), &m1)).unwrap();
    let args = node.args(&[
        "--kubeconfig",
        &kubeconfig,
        "--node-name",
        "m1",
        "--timeout",
        "25s",
        "--poll-interval",
        "200ms",
        "--request-timeout",
        "5s",
    ]);
    let out = run(node.tmp.path(), &args, &[]);
    assert_fails(&out, 1, "the self-hosted control plane");
    // No kubelet may set the role the rendered control plane selects; start did.
    let m1 = rt.block_on(nodes.get("m1")).unwrap();
    let labels = m1.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("node-role.kubernetes.io/control-plane")
            .map(String::as_str),
        Some(""),
        "{labels:?}"
    );
    assert!(
        stderr(&out).contains("labelled node m1 node-role.kubernetes.io/control-plane="),
        "{}",
        stderr(&out)
    );
    let line = error_line(&out);
    for want in [
        "gave up after",
        "no pod of kube-system/kube-apiserver on a live node",
        "no pod of kube-system/kube-controller-manager on a live node",
        "no pod of kube-system/kube-scheduler on a live node",
        "no pod of kube-system/pod-checkpointer on a live node",
        &format!("bootstrap pods stay in {}", node.pods.display()),
    ] {
        assert!(line.contains(want), "{want:?} missing from: {line}");
    }
    let log = stderr(&out);
    assert!(
        log.contains("self-hosted objects:") && log.contains("created"),
        "{log}"
    );
    // --kubeconfig is start's own; the bootstrap pods still get the asset dir's.
    node.assert_bootstrap_installed();

    rt.block_on(async {
        let ds: kube::Api<k8s_openapi::api::apps::v1::DaemonSet> =
            kube::Api::namespaced(client.clone(), "kube-system");
        let apiserver = ds.get("kube-apiserver").await.unwrap();
        assert_eq!(apiserver.metadata.name.as_deref(), Some("kube-apiserver"));
        let deploys: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
            kube::Api::namespaced(client.clone(), "kube-system");
        deploys.get("kube-scheduler").await.unwrap();
        let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client, "kube-system");
        cms.get("kubeconfig-in-cluster").await.unwrap();
    });
    drop(harness);
}

/// A runtime, etcd + fake-apiserver, a node reaching it, and the admin kubeconfig's path.
fn node_on_fake_apiserver() -> (tokio::runtime::Runtime, Harness, Node, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let harness = rt
        .block_on(Harness::start())
        .expect("etcd + fake-apiserver");
    let node = Node::for_api(&harness.server.url());
    let kubeconfig = harness.kubeconfig.to_str().unwrap().to_string();
    (rt, harness, node, kubeconfig)
}

async fn admin_client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// `--node-name` names a node that never registers (a typo, or the kubelet's name is not
/// the host name): nothing can run there, and the error says which node and why.
#[test]
fn a_node_that_never_registers_is_named_at_the_deadline() {
    let (_rt, harness, node, kubeconfig) = node_on_fake_apiserver();
    let args = node.args(&[
        "--kubeconfig",
        &kubeconfig,
        "--node-name",
        "ghost",
        "--timeout",
        "8s",
        "--poll-interval",
        "200ms",
    ]);
    let out = run(node.tmp.path(), &args, &[]);
    assert_fails(
        &out,
        1,
        "node \"ghost\" is not registered (is --node-name the kubelet's node name?)",
    );
    drop(harness);
}

/// `NOTIFY_SOCKET` names a socket whose reader has stalled (systemd busy, or a stale
/// socket some other process bound). `STATUS=` is best effort: once the socket's queue
/// is full, `start` must not block on it and so miss its own deadline, nor ignore
/// SIGTERM. Regression: it used to block in sendmsg forever, past `--timeout`.
#[test]
fn a_notify_socket_nobody_reads_does_not_hold_start_past_its_timeout() {
    let node = Node::new();
    let sock_path = node.tmp.path().join("notify.sock");
    let _sock = UnixDatagram::bind(&sock_path).unwrap();
    let began = Instant::now();
    let (mut child, _, err) = spawn(
        node.tmp.path(),
        &node.args(&FAST),
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    let limit = Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "a 3 s --timeout still running after {limit:?} with an unread NOTIFY_SOCKET; stderr: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: fs::read(&err).unwrap(),
    };
    assert_fails(&out, 1, &node.api);
}

/// Paths relative to the working directory, as an operator types them. Regression: a
/// `--lock-file` or `--bootstrap-secrets-dir` with no directory part failed with
/// `create dir : No such file or directory` (the empty parent was created).
#[test]
fn relative_paths_work_like_absolute_ones() {
    let node = Node::new();
    let args = [
        "start",
        "--asset-dir",
        "assets",
        "--pod-manifest-path",
        "pods",
        "--bootstrap-secrets-dir",
        "secrets",
        "--lock-file",
        "start.lock",
    ];
    let mut all = args.to_vec();
    all.extend_from_slice(&FAST);
    let out = run(node.tmp.path(), &all, &[]);
    assert_fails(&out, 1, &node.api);
    let pods = node.tmp.path().join("pods");
    assert_eq!(
        tree(&pods).into_keys().collect::<Vec<_>>(),
        node.bootstrap_manifests().into_keys().collect::<Vec<_>>()
    );
    assert!(node.tmp.path().join("secrets/kubeconfig").is_file());
}

/// On a terminal, waiting is one live line rewritten in place (`\r` + erase line), with
/// the elapsed time; the log lines still come. Runs under `script`, which gives `start`
/// a pseudo-terminal, like an operator's ssh session.
#[test]
fn a_terminal_gets_a_live_waiting_line() {
    let Ok(script) = which("script") else {
        eprintln!("SKIPPED: no `script` (util-linux) to give start a terminal");
        return;
    };
    let node = Node::new();
    let args = node.args(&FAST);
    let bin = env!("CARGO_BIN_EXE_kubeboot");
    let quoted: Vec<String> = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect();
    let out = Command::new(script)
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .env("TERM", "xterm")
        .current_dir(node.tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("\r\x1b[K[") && text.contains("s] waiting for the api-server at"),
        "no live line in {text:?}"
    );
    assert!(text.contains("gave up after"), "{text:?}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
