//! fake-kubelet without an api-server: static pods from a temp dir, run as real local
//! programs (`/bin/sh`, `/bin/sleep`, `python3 -m http.server`), observed only the way
//! kubeboot observes a kubelet: `/pods`, `/healthz`, container logs and process ids.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kubeboot_testkit::kubelet::harness::{FakeKubelet, KubeletOptions, container_pid, pid_alive};

const WAIT: Duration = Duration::from_secs(20);
const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// Runs `f` on its own thread and fails the test if it takes longer than the deadline.
fn bounded(f: impl FnOnce() -> Result<()> + Send + 'static) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(TEST_DEADLINE) {
        Ok(r) => r,
        Err(_) => bail!("test did not finish within {TEST_DEADLINE:?}"),
    }
}

fn kubelet() -> Result<FakeKubelet> {
    let map = [
        ("busybox", "/bin/sh"),
        ("sleeper", "/bin/sleep"),
        ("python", "/usr/bin/python3"),
    ];
    let opts = KubeletOptions {
        image_map: map
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect(),
        ..Default::default()
    };
    FakeKubelet::start(env!("CARGO_BIN_EXE_fake-kubelet"), opts)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A pod manifest; `containers` and `extra` are YAML already indented for `spec:`.
fn manifest(name: &str, extra: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\nspec:\n{extra}  containers:\n{containers}"
    )
}

fn sh(name: &str, script: &str) -> String {
    format!(
        "  - name: {name}\n    image: busybox\n    command: [/bin/sh, -c, {}]\n",
        serde_json::json!(script)
    )
}

fn find<'a>(pods: &'a [Pod], name: &str) -> Option<&'a Pod> {
    pods.iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn cstatus<'a>(p: &'a Pod, c: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == c)
}

fn condition(p: &Pod, ty: &str) -> bool {
    let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds.is_some_and(|c| c.iter().any(|c| c.type_ == ty && c.status == "True"))
}

fn wait_pid_gone(pid: u32) -> Result<()> {
    let deadline = Instant::now() + WAIT;
    while pid_alive(pid) {
        if Instant::now() > deadline {
            bail!("process {pid} still alive after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn static_pod_runs_and_is_reported_like_a_kubelet() -> Result<()> {
    bounded(|| {
        let k = kubelet()?;
        assert!(k.healthz());
        let port = free_port();
        let env = "    env:\n    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: GREETING, value: \"on $(NODE)\"}\n";
        let probe = format!(
            "    readinessProbe: {{httpGet: {{path: /, port: {port}}}, periodSeconds: 1}}\n"
        );
        let containers = format!(
            "{}{env}  - name: web\n    image: python:3\n    command: [python3, -m, http.server, \"{port}\", --bind, 127.0.0.1]\n{probe}",
            sh("main", "echo \"$GREETING ip=$IP\"; exec sleep 300")
        );
        k.write_manifest(
            "web.yaml",
            &manifest("web", "  hostNetwork: true\n", &containers),
        )?;
        let pod = k.wait_for("web-node1 Running and Ready", WAIT, |pods| {
            find(pods, "web-node1")
                .filter(|p| phase(p) == "Running" && condition(p, "Ready"))
                .cloned()
        })?;
        let ann = pod.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get("kubernetes.io/config.source").map(String::as_str),
            Some("file")
        );
        assert!(ann.contains_key("kubernetes.io/config.hash"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
        let st = pod.status.clone().unwrap_or_default();
        assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.1"));
        assert!(st.start_time.is_some());
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(condition(&pod, ty), "{ty}");
        }
        let main = cstatus(&pod, "main").unwrap();
        assert!(
            main.state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .is_some()
        );
        assert!(pid_alive(container_pid(&pod, "main").unwrap()));
        // readOnlyPort: 0 (the config file's default): only 10250 lists pods.
        assert_eq!(k.read_only_port, 0);
        let deadline = Instant::now() + WAIT;
        while !k
            .container_log("kube-system", "web-node1", "main")
            .contains("on node1 ip=127.0.0.1")
        {
            if Instant::now() > deadline {
                bail!(
                    "env not applied: {:?}",
                    k.container_log("kube-system", "web-node1", "main")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })
}

#[test]
fn crashing_containers_follow_restart_policy_with_backoff() -> Result<()> {
    bounded(|| {
        let k = kubelet()?;
        k.write_manifest("crash.yaml", &manifest("crash", "", &sh("c", "exit 3")))?;
        k.write_manifest(
            "never.yaml",
            &manifest("never", "  restartPolicy: Never\n", &sh("c", "exit 3")),
        )?;
        k.write_manifest(
            "once.yaml",
            &manifest("once", "  restartPolicy: OnFailure\n", &sh("c", "exit 0")),
        )?;
        let started = Instant::now();
        // Upstream's back-off (`doBackOff`): restart 1 at once, then 10 s, then 20 s; the
        // pod waits as CrashLoopBackOff with `format.Pod`'s `name_namespace(uid)`.
        let pod = k.wait_for(
            "crash-node1 backing off 20s",
            Duration::from_secs(40),
            |pods| {
                let p = find(pods, "crash-node1")?;
                let w = cstatus(p, "c")?.state.as_ref()?.waiting.clone()?;
                (w.message.as_deref()?.starts_with("back-off 20s")).then(|| p.clone())
            },
        )?;
        assert!(
            started.elapsed() >= Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let c = cstatus(&pod, "c").unwrap();
        assert_eq!(c.restart_count, 2);
        let w = c.state.clone().unwrap().waiting.unwrap();
        assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(
            w.message.as_deref(),
            Some(
                format!("back-off 20s restarting failed container=c pod=crash-node1_{ns}({uid})")
                    .as_str()
            )
        );
        let last = c.last_state.clone().unwrap_or_default();
        assert_eq!(last.terminated.map(|t| t.exit_code), Some(3));
        assert_eq!(phase(&pod), "Running");
        k.wait_for("never Failed, once Succeeded", WAIT, |pods| {
            let never = find(pods, "never-node1")?;
            let once = find(pods, "once-node1")?;
            let code = cstatus(never, "c")?
                .state
                .as_ref()?
                .terminated
                .as_ref()?
                .exit_code;
            (phase(never) == "Failed" && phase(once) == "Succeeded" && code == 3).then_some(())
        })?;
        let pods = k.pods()?;
        assert_eq!(
            cstatus(find(&pods, "never-node1").unwrap(), "c")
                .unwrap()
                .restart_count,
            0
        );
        Ok(())
    })
}

#[test]
fn init_containers_run_in_order_before_containers() -> Result<()> {
    bounded(|| {
        let k = kubelet()?;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let init = format!(
            "  initContainers:\n{}{}",
            sh("first", &format!("echo 1 > {d}/a")),
            sh(
                "second",
                &format!("test -f {d}/a && test -f {d}/go && echo 2 > {d}/b")
            )
        );
        let main = sh(
            "main",
            &format!("test -f {d}/b || exit 9; cat {d}/a {d}/b > {d}/out; exec sleep 300"),
        );
        k.write_manifest("init.yaml", &manifest("init", &init, &main))?;
        // `second` fails until the flag exists: retried with back-off, pod stays Pending.
        k.wait_for("init container `second` retried", WAIT, |pods| {
            let p = find(pods, "init-node1")?;
            let st = p.status.as_ref()?.init_container_statuses.as_ref()?;
            (st[1].restart_count >= 1 && phase(p) == "Pending" && !condition(p, "Initialized"))
                .then_some(())
        })?;
        std::fs::write(dir.path().join("go"), "")?;
        let pod = k.wait_for("init-node1 Running", WAIT, |pods| {
            find(pods, "init-node1")
                .filter(|p| phase(p) == "Running" && condition(p, "Initialized"))
                .cloned()
        })?;
        let inits = pod.status.unwrap().init_container_statuses.unwrap();
        for s in &inits {
            assert_eq!(
                s.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code),
                Some(0),
                "{}",
                s.name
            );
        }
        let deadline = Instant::now() + WAIT;
        while std::fs::read_to_string(dir.path().join("out")).unwrap_or_default() != "1\n2\n" {
            if Instant::now() > deadline {
                bail!("main container did not see both init outputs");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })
}

#[test]
fn changed_and_removed_manifests_restart_and_stop_the_pod() -> Result<()> {
    bounded(|| {
        let k = kubelet()?;
        let sleeper =
            |n: &str| format!("  - name: s\n    image: sleeper\n    command: [sleep, \"{n}\"]\n");
        k.write_manifest("s.yaml", &manifest("s", "", &sleeper("300")))?;
        let running = |pods: &[Pod]| {
            find(pods, "s-node1")
                .filter(|p| phase(p) == "Running")
                .and_then(|p| container_pid(p, "s"))
        };
        let pid1 = k.wait_for("s-node1 Running", WAIT, running)?;
        k.write_manifest("s.yaml", &manifest("s", "", &sleeper("301")))?;
        let pid2 = k.wait_for("s-node1 restarted with a new pid", WAIT, |pods| {
            running(pods).filter(|p| *p != pid1)
        })?;
        wait_pid_gone(pid1)?;
        std::fs::remove_file(k.manifest_dir.join("s.yaml"))?;
        k.wait_for("s-node1 gone from /pods", WAIT, |pods| {
            find(pods, "s-node1").is_none().then_some(())
        })?;
        wait_pid_gone(pid2)
    })
}

/// The kubelet's admission (`predicateAdmitHandler.Admit` → NodePorts, `rejectPod`): a
/// pod whose host port an admitted pod holds is rejected for good, never run, even
/// once the holder is gone. A double that let it wait for the port (as this one once
/// did) fails here: it would start `b` after `a` leaves.
#[test]
fn second_pod_on_a_held_host_port_is_rejected_and_never_runs() -> Result<()> {
    bounded(|| {
        let k = kubelet()?;
        let port = free_port();
        let c = |proto: &str| {
            format!(
                "  - name: s\n    image: sleeper\n    command: [sleep, \"300\"]\n    ports: [{{containerPort: {port}, protocol: {proto}}}]\n"
            )
        };
        // hostNetwork: the containerPort becomes the hostPort (API defaulting).
        k.write_manifest("a.yaml", &manifest("a", "  hostNetwork: true\n", &c("TCP")))?;
        k.wait_for("a-node1 Running", WAIT, |pods| {
            find(pods, "a-node1")
                .filter(|p| phase(p) == "Running")
                .map(|_| ())
        })?;
        // Same number on UDP is another port: admitted.
        k.write_manifest("u.yaml", &manifest("u", "  hostNetwork: true\n", &c("UDP")))?;
        k.wait_for("u-node1 Running", WAIT, |pods| {
            find(pods, "u-node1")
                .filter(|p| phase(p) == "Running")
                .map(|_| ())
        })?;
        k.write_manifest("b.yaml", &manifest("b", "  hostNetwork: true\n", &c("TCP")))?;
        let want = "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports";
        k.wait_for("b-node1 rejected", WAIT, |pods| {
            let b = find(pods, "b-node1")?;
            let st = b.status.as_ref()?;
            (phase(b) == "Failed"
                && st.reason.as_deref() == Some("NodePorts")
                && st.message.as_deref() == Some(want)
                && container_pid(b, "s").is_none())
            .then_some(())
        })?;
        // The holder leaves; the rejected pod stays rejected and never runs.
        std::fs::remove_file(k.manifest_dir.join("a.yaml"))?;
        k.wait_for("a-node1 gone", WAIT, |pods| {
            find(pods, "a-node1").is_none().then_some(())
        })?;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let pods = k.pods()?;
            let b = find(&pods, "b-node1");
            if b.is_none_or(|b| phase(b) != "Failed" || container_pid(b, "s").is_some()) {
                bail!("b-node1 left its rejection: {b:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // A new incarnation (changed manifest) is admitted afresh and runs.
        k.write_manifest(
            "b.yaml",
            &manifest(
                "b",
                "  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n",
                &c("TCP"),
            ),
        )?;
        k.wait_for("the new b-node1 Running", WAIT, |pods| {
            find(pods, "b-node1")
                .filter(|p| phase(p) == "Running")
                .map(|_| ())
        })
    })
}

#[test]
fn bad_manifests_are_skipped_and_sigterm_stops_every_pod() -> Result<()> {
    bounded(|| {
        let mut k = kubelet()?;
        k.write_manifest(
            "garbage.yaml",
            "kind: Pod\napiVersion: v1\nspec: [not, a, map\n",
        )?;
        k.write_manifest(
            "deploy.json",
            r#"{"kind":"Deployment","apiVersion":"apps/v1"}"#,
        )?;
        let stubborn = sh("c", "trap '' TERM; sleep 300");
        k.write_manifest(
            "stubborn.yaml",
            &manifest(
                "stubborn",
                "  terminationGracePeriodSeconds: 1\n",
                &stubborn,
            ),
        )?;
        k.write_manifest(
            "plain.yaml",
            &manifest("plain", "", &sh("c", "exec sleep 300")),
        )?;
        let pids = k.wait_for("both pods Running", WAIT, |pods| {
            let pid = |n| {
                find(pods, n)
                    .filter(|p| phase(p) == "Running")
                    .and_then(|p| container_pid(p, "c"))
            };
            Some([pid("stubborn-node1")?, pid("plain-node1")?])
        })?;
        assert_eq!(k.pods()?.len(), 2, "bad manifests must not appear in /pods");
        assert!(k.healthz());
        let st = k.terminate(Duration::from_secs(15))?;
        assert!(st.success(), "kubelet exit: {st}");
        for pid in pids {
            wait_pid_gone(pid)?;
        }
        Ok(())
    })
}
