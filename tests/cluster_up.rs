//! The local cluster of `scripts/cluster` (real etcd, the testkit's kubelet, api-server,
//! controller-manager and scheduler doubles, `kubeboot render` + `kubeboot start`), seen
//! through kube-rs as any client would: after `up` the self-hosted control plane runs
//! with no bootstrap pod left and the master is Ready; after `down` no process of the
//! cluster is left.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;

/// `up` renders, starts etcd and a kubelet, and runs `kubeboot start --timeout 3m`.
const UP_DEADLINE: Duration = Duration::from_secs(240);
const DOWN_DEADLINE: Duration = Duration::from_secs(90);
const BUILD_DEADLINE: Duration = Duration::from_secs(600);

const TESTKIT_BINS: [&str; 5] = [
    "fake-apiserver",
    "fake-kubelet",
    "fake-controller-manager",
    "fake-scheduler",
    "fake-pause",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dir holding `kubeboot`, with the testkit's doubles built beside it.
fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_kubeboot"))
        .parent()
        .unwrap()
        .to_path_buf();
    let missing: Vec<&str> = TESTKIT_BINS
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if !missing.is_empty() {
        // `cargo test -p kubeboot` does not build a dev-dependency's binaries.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut child = Command::new(cargo)
            .args(["build", "-p", "kubeboot-testkit", "--bins"])
            .current_dir(repo())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let status = wait(
            &mut child,
            BUILD_DEADLINE,
            "cargo build -p kubeboot-testkit",
        );
        assert!(status.success(), "building {missing:?} failed");
        for b in missing {
            assert!(dir.join(b).is_file(), "{b} not in {}", dir.display());
        }
    }
    dir
}

/// Waits for `child` at most `limit`; kills it and panics past that.
fn wait(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `scripts/cluster CMD DIR` with output in files under `logs`; returns the exit
/// status, stdout and stderr.
fn cluster(cmd: &str, dir: &Path, logs: &Path, limit: Duration) -> (ExitStatus, String, String) {
    let out = logs.join(format!("cluster-{cmd}.stdout"));
    let err = logs.join(format!("cluster-{cmd}.stderr"));
    let mut child = Command::new(repo().join("scripts/cluster"))
        .arg(cmd)
        .arg(dir)
        .env("KUBEBOOT_BIN_DIR", bin_dir())
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = wait(&mut child, limit, &format!("scripts/cluster {cmd}"));
    (
        status,
        fs::read_to_string(out).unwrap(),
        fs::read_to_string(err).unwrap(),
    )
}

/// Pids (other than ours) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push((pid, cmdline));
        }
    }
    out
}

/// Runs `scripts/cluster down` when dropped, so a failing test leaves no cluster behind.
struct Cluster {
    dir: PathBuf,
    logs: PathBuf,
    down: bool,
}

impl Cluster {
    fn down(&mut self) -> (ExitStatus, String, String) {
        self.down = true;
        cluster("down", &self.dir, &self.logs, DOWN_DEADLINE)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.down {
            self.down = true;
            let (status, _, err) = cluster("down", &self.dir, &self.logs, DOWN_DEADLINE);
            if !status.success() {
                eprintln!(
                    "scripts/cluster down {}: {status}: {err}",
                    self.dir.display()
                );
            }
        }
    }
}

async fn client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(10));
    kube::Client::try_from(config).unwrap()
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[test]
fn cluster_up_runs_the_self_hosted_control_plane_and_down_stops_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let logs = tmp.path().join("test-logs");
    fs::create_dir_all(&logs).unwrap();
    // No trailing slash: `down` looks for strays with `pgrep -f DIR/`.
    let needle = dir.to_str().unwrap().to_string();

    let mut guard = Cluster {
        dir: dir.clone(),
        logs: logs.clone(),
        down: false,
    };
    let (status, out, err) = cluster("up", &dir, &logs, UP_DEADLINE);
    assert!(status.success(), "scripts/cluster up: {status}\n{err}");
    let kubeconfig = PathBuf::from(out.lines().last().expect("up printed nothing").trim());
    assert!(kubeconfig.is_file(), "not a kubeconfig: {kubeconfig:?}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (pods, nodes) = rt.block_on(async {
        let c = client(&kubeconfig).await;
        let pods = kube::Api::<Pod>::namespaced(c.clone(), "kube-system")
            .list(&ListParams::default())
            .await
            .unwrap();
        let nodes = kube::Api::<Node>::all(c)
            .list(&ListParams::default())
            .await
            .unwrap();
        (pods.items, nodes.items)
    });
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "pod-checkpointer",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(component)),
            "no {component} pod in kube-system: {names:?}"
        );
    }
    let bootstrap: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("bootstrap-"))
        .collect();
    assert!(bootstrap.is_empty(), "bootstrap pods left: {bootstrap:?}");
    let master = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some("master-1"))
        .unwrap_or_else(|| panic!("no node master-1 among {} nodes", nodes.len()));
    assert!(ready(master), "master-1 is not Ready: {:?}", master.status);
    drop(rt);

    let (status, _, err) = guard.down();
    assert!(status.success(), "scripts/cluster down: {status}\n{err}");
    let left = processes_mentioning(&needle);
    assert!(left.is_empty(), "processes left after down: {left:?}");
}
