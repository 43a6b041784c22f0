//! A host-run etcd cluster's restore and rejoin against real etcd (Debian's 3.4): issue
//! 11's `two-restorers` at the level of the etcd members. Each member's unit is a
//! stand-in that runs `etcd` as systemd would: with the environment of its
//! EnvironmentFile, then of any EnvironmentFile a drop-in names, read only on `reload`
//! (as systemd reads drop-ins only at daemon-reload). The same flow under a real
//! systemd is the machine drills' (issue 13).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kubeboot::hostetcd::act::{self, EtcdUnit, HostEtcd};
use kubeboot::hostetcd::decide::{Action, ClusterView, decide};
use kubeboot::hostetcd::member::{Member, parse_env_file};
use kubeboot::source::etcd::EtcdConfig;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct ProcUnit {
    env_file: PathBuf,
    drop_in: PathBuf,
    extra: Mutex<Vec<PathBuf>>,
    child: Mutex<Option<Child>>,
}

impl ProcUnit {
    fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for ProcUnit {
    fn drop(&mut self) {
        self.kill();
    }
}

impl EtcdUnit for ProcUnit {
    async fn stop(&self) -> Result<(), String> {
        self.kill();
        Ok(())
    }
    async fn start(&self) -> Result<(), String> {
        let mut env = BTreeMap::new();
        let files =
            std::iter::once(self.env_file.clone()).chain(self.extra.lock().unwrap().clone());
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            env.extend(parse_env_file(&text)?);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env_file.with_extension("log"))
            .unwrap();
        let child = Command::new("etcd")
            .env_clear()
            .envs(env)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        *self.child.lock().unwrap() = Some(child);
        Ok(())
    }
    async fn reload(&self) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.drop_in).unwrap_or_default();
        *self.extra.lock().unwrap() = text
            .lines()
            .filter_map(|l| l.strip_prefix("EnvironmentFile="))
            .map(PathBuf::from)
            .collect();
        Ok(())
    }
}

/// Masters m1 and m2 of a two-member cluster, each with its /etc/default/etcd and the
/// data a power loss left unreadable.
fn masters(root: &Path) -> Vec<(HostEtcd, ProcUnit)> {
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{}=http://127.0.0.1:{p}", i + 1))
        .collect();
    let clients: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("http://127.0.0.1:{c}"))
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let name = format!("m{}", i + 1);
            let home = root.join(&name);
            let data = home.join("data");
            std::fs::create_dir_all(data.join("member/snap")).unwrap();
            std::fs::write(data.join("member/snap/db"), "not a bbolt file").unwrap();
            let file = home.join("etcd.env");
            std::fs::write(
                &file,
                format!(
                    "ETCD_NAME={name}\nETCD_DATA_DIR={}\n\
                     ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:{c}\nETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:{c}\n\
                     ETCD_LISTEN_PEER_URLS=http://127.0.0.1:{p}\nETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:{p}\n\
                     ETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_CLUSTER_STATE=new\n",
                    data.display(),
                    cluster.join(",")
                ),
            )
            .unwrap();
            let env = parse_env_file(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let drop_in = home.join("run/systemd/system/etcd.service.d/50-kubeboot-join.conf");
            let h = HostEtcd {
                unit: "etcd.service".into(),
                member: Member::from_env(&env).unwrap(),
                client: EtcdConfig {
                    dial_timeout: Duration::from_secs(2),
                    request_timeout: Duration::from_secs(5),
                    ..EtcdConfig::new(vec![])
                },
                peers: clients.iter().filter(|u| **u != clients[i]).cloned().collect(),
                etcd_bin: "etcd".into(),
                restore_tool: "etcdctl".into(),
                bump: 1000,
                join_env: home.join("run/kubeboot/etcd-join.env"),
                drop_in: drop_in.clone(),
                timeout: Duration::from_secs(30),
            };
            let unit = ProcUnit {
                env_file: file,
                drop_in,
                extra: Mutex::new(vec![]),
                child: Mutex::new(None),
            };
            (h, unit)
        })
        .collect()
}

/// A real snapshot of a cluster holding one Kubernetes object, and its revision.
fn backup(root: &Path) -> (PathBuf, i64) {
    let source = Etcd::start(EtcdOptions::default()).unwrap();
    source
        .etcdctl(&["put", "/registry/namespaces/drill", "v"])
        .unwrap();
    let snap = root.join("snapshot.db");
    let out = source
        .etcdctl(&["snapshot", "save", snap.to_str().unwrap()])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (snap, 2)
}

fn get(endpoint: &str, key: &str) -> String {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "get", key, "--print-value-only"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn local(h: &HostEtcd) -> ClusterView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = act::observe(h).await;
        match seen.local {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two masters (wrongly) both allowed to restore, at the same moment: each makes its own
/// one-member cluster from the backup; the decision then has m2 yield and rejoin m1's,
/// and the end is one cluster of two members holding the backup's data: one past.
#[tokio::test(flavor = "multi_thread")]
async fn two_restorers_end_with_one_past() {
    let root = tempfile::tempdir().unwrap();
    let (snap, rev) = backup(root.path());
    let ms = masters(root.path());

    let mut seen = Vec::new();
    for (h, _) in &ms {
        let s = act::observe(h).await;
        let a = decide(&s.observed(h, Some(rev), true));
        assert!(matches!(a, Action::Restore(_)), "{a:?}");
        seen.push(s);
    }
    let (a, b) = tokio::join!(
        act::restore(&ms[0].0, &ms[0].1, &seen[0], &snap, rev, "m1"),
        act::restore(&ms[1].0, &ms[1].1, &seen[1], &snap, rev, "m2")
    );
    for line in [a.unwrap(), b.unwrap()] {
        assert!(line.contains("as a new one-member cluster"), "{line}");
        let aside = line.rsplit("moved aside to ").next().unwrap();
        assert!(
            Path::new(aside).join("member/snap/db").is_file(),
            "kept: {line}"
        );
    }
    let (c1, c2) = (local(&ms[0].0).await, local(&ms[1].0).await);
    assert_ne!(
        c1.cluster_id, c2.cluster_id,
        "two restores, two pasts (for now)"
    );
    assert!(
        c1.revision > 1000,
        "the revision was moved on: {}",
        c1.revision
    );
    assert_eq!(c1.restored.as_ref().unwrap().node, "m1");

    // m1 serves in the winner, but m2's cluster still answers: m1 waits for it to join.
    let s1 = act::observe(&ms[0].0).await;
    assert!(matches!(
        decide(&s1.observed(&ms[0].0, Some(rev), true)),
        Action::Wait(ref w) if w.contains("waiting for their members to join")
    ));
    let s2 = act::observe(&ms[1].0).await;
    let Action::Join {
        endpoint,
        replace,
        why,
    } = decide(&s2.observed(&ms[1].0, Some(rev), true))
    else {
        panic!("m2 must yield to m1's restore");
    };
    assert_eq!(endpoint, ms[0].0.member.client_urls[0], "{why}");
    let line = act::join(&ms[1].0, &ms[1].1, &s2, &endpoint, replace)
        .await
        .unwrap();
    assert!(line.contains("joined cluster"), "{line}");
    assert!(
        !ms[1].0.drop_in.exists() && !ms[1].0.join_env.exists(),
        "the join's settings are removed"
    );

    let joined = local(&ms[1].0).await;
    assert_eq!(joined.cluster_id, c1.cluster_id);
    let started = joined.members.iter().filter(|m| !m.name.is_empty()).count();
    assert_eq!(started, 2, "{:?}", joined.members);
    assert_eq!(
        get(&ms[1].0.member.client_urls[0], "/registry/namespaces/drill"),
        "v"
    );
    let again = act::observe(&ms[1].0).await;
    assert!(matches!(
        decide(&again.observed(&ms[1].0, Some(rev), true)),
        Action::Healthy(_)
    ));
    let s1 = act::observe(&ms[0].0).await;
    assert!(matches!(
        decide(&s1.observed(&ms[0].0, Some(rev), true)),
        Action::Healthy(_)
    ));
}

/// The member came up between the decision and the restore: nothing is moved.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_changed_since_the_decision_is_not_restored_over() {
    let root = tempfile::tempdir().unwrap();
    let (snap, rev) = backup(root.path());
    let ms = masters(root.path());
    let (h, unit) = &ms[0];
    let seen = act::observe(h).await;
    assert!(matches!(
        decide(&seen.observed(h, Some(rev), true)),
        Action::Restore(_)
    ));
    // Its data becomes readable (etcd wrote a new db) before the restore.
    std::fs::remove_dir_all(&h.member.data_dir).unwrap();
    let err = act::restore(h, unit, &seen, &snap, rev, "m1")
        .await
        .unwrap_err();
    assert!(err.contains("changed since the decision"), "{err}");
    assert!(
        !h.member.data_dir.exists() && unit.child.lock().unwrap().is_none(),
        "nothing moved or started"
    );
}
