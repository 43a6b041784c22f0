//! `ensure`'s systemd probe over a real D-Bus: a private `dbus-daemon` (never the
//! host's bus) with a stand-in for systemd1 serving `GetUnit` and the Unit
//! interface's `ActiveState`/`SubState`, as systemd does. systemd itself is never run.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{assert_fails, kubeboot};
use kubeboot::systemd::dbus::{self, UnitState};
use zbus::zvariant::OwnedObjectPath;

/// A private bus; killed on drop.
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn private_bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!(
            "--address=unix:path={}",
            dir.path().join("bus").display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon (Debian package dbus-daemon; scripts/setup-tools installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Bus {
        child,
        address: line.trim().to_string(),
        _dir: dir,
    }
}

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum Systemd1Error {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
}

struct Manager;

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    fn get_unit(&self, name: &str) -> Result<OwnedObjectPath, Systemd1Error> {
        match name {
            "kubelet.service" => Ok(OwnedObjectPath::try_from(
                "/org/freedesktop/systemd1/unit/kubelet_2eservice",
            )
            .unwrap()),
            "etcd.service" => Ok(OwnedObjectPath::try_from(
                "/org/freedesktop/systemd1/unit/etcd_2eservice",
            )
            .unwrap()),
            _ => Err(Systemd1Error::NoSuchUnit(format!(
                "Unit {name} not loaded."
            ))),
        }
    }
}

struct Unit {
    active: &'static str,
    sub: &'static str,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property)]
    fn active_state(&self) -> String {
        self.active.into()
    }
    #[zbus(property)]
    fn sub_state(&self) -> String {
        self.sub.into()
    }
}

/// systemd1 on `bus`: kubelet.service failed, etcd.service running.
async fn fake_systemd(bus: &Bus) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.systemd1")
        .unwrap()
        .serve_at("/org/freedesktop/systemd1", Manager)
        .unwrap()
        .serve_at(
            "/org/freedesktop/systemd1/unit/kubelet_2eservice",
            Unit {
                active: "failed",
                sub: "failed",
            },
        )
        .unwrap()
        .serve_at(
            "/org/freedesktop/systemd1/unit/etcd_2eservice",
            Unit {
                active: "active",
                sub: "running",
            },
        )
        .unwrap()
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn unit_states_are_read_from_systemd1() {
    let bus = private_bus();
    let _systemd = fake_systemd(&bus).await;
    let conn = dbus::connect(Some(&bus.address)).await.unwrap();

    let kubelet = dbus::unit_state(&conn, "kubelet.service").await.unwrap();
    assert_eq!(
        kubelet,
        UnitState::Loaded {
            active: "failed".into(),
            sub: "failed".into()
        }
    );
    assert!(kubelet.is_down_for_good() && !kubelet.is_active());
    assert_eq!(kubelet.to_string(), "failed (failed)");

    let etcd = dbus::unit_state(&conn, "etcd.service").await.unwrap();
    assert!(etcd.is_active() && !etcd.is_down_for_good());

    let none = dbus::unit_state(&conn, "nope.service").await.unwrap();
    assert_eq!(none, UnitState::NotLoaded);

    let err = dbus::connect(Some("unix:path=/nonexistent/bus"))
        .await
        .unwrap_err();
    assert!(err.contains("/nonexistent/bus"), "{err}");
}

#[test]
fn ensure_does_not_wait_for_a_kubelet_whose_unit_failed() {
    let bus = private_bus();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _systemd = runtime.block_on(fake_systemd(&bus));
    let work = tempfile::tempdir().unwrap();
    let p = |n: &str| work.path().join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("kubeconfig"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    // A 10-minute boot grace: only systemd's "failed" can end this at once.
    let out = kubeboot(&[
        "ensure",
        "--kubeconfig",
        &p("kubeconfig"),
        "--kubelet-healthz-url",
        "http://127.0.0.1:1/healthz",
        "--systemd-bus-address",
        &bus.address,
        "--cri-socket=",
        "--boot-grace",
        "10m",
        "--request-timeout",
        "2s",
        "--lock-file",
        &p("start.lock"),
        "--recovery-root",
        &p("recovery"),
    ]);
    assert_fails(&out, 1, "systemd: kubelet.service is failed (failed)");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!work.path().join("recovery").exists());
}

/// Debian's etcd.service as systemd exports it: `Environment=` with `%H` already
/// resolved at load, and `EnvironmentFile=-/etc/default/%p`.
struct EtcdService {
    env_file: String,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Service")]
impl EtcdService {
    #[zbus(property)]
    fn environment(&self) -> Vec<String> {
        vec![
            "DAEMON_ARGS=".into(),
            "ETCD_NAME=master-1".into(),
            "ETCD_DATA_DIR=/var/lib/etcd/default".into(),
        ]
    }
    #[zbus(property)]
    fn environment_files(&self) -> Vec<(String, bool)> {
        vec![(self.env_file.clone(), true)]
    }
}

#[tokio::test]
async fn a_host_etcd_members_environment_is_read_from_its_unit() {
    let bus = private_bus();
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("etcd");
    std::fs::write(
        &env_file,
        "ETCD_INITIAL_ADVERTISE_PEER_URLS=http://10.0.0.1:2380\nETCD_ADVERTISE_CLIENT_URLS=http://10.0.0.1:2379\n",
    )
    .unwrap();
    let _systemd = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.systemd1")
        .unwrap()
        .serve_at("/org/freedesktop/systemd1", Manager)
        .unwrap()
        .serve_at(
            "/org/freedesktop/systemd1/unit/etcd_2eservice",
            EtcdService {
                env_file: env_file.display().to_string(),
            },
        )
        .unwrap()
        .build()
        .await
        .unwrap();
    let conn = dbus::connect(Some(&bus.address)).await.unwrap();
    let (environment, files) = dbus::unit_environment(&conn, "etcd.service").await.unwrap();
    let files: Vec<_> = files.into_iter().map(|(f, o)| (f.into(), o)).collect();
    let env = kubeboot::hostetcd::member::unit_env(&environment, &files).unwrap();
    let m = kubeboot::hostetcd::member::Member::from_env(&env).unwrap();
    assert_eq!(m.name, "master-1");
    assert_eq!(
        m.data_dir,
        std::path::PathBuf::from("/var/lib/etcd/default")
    );
    assert_eq!(m.peer_url, "http://10.0.0.1:2380");
    // The optional file may be missing; a required one may not.
    std::fs::remove_file(&env_file).unwrap();
    assert!(kubeboot::hostetcd::member::unit_env(&environment, &files).is_ok());
    let required = vec![(env_file.clone(), false)];
    let err = kubeboot::hostetcd::member::unit_env(&environment, &required).unwrap_err();
    assert!(err.contains(env_file.to_str().unwrap()), "{err}");
}

#[test]
fn ensure_names_an_etcd_env_file_it_cannot_use() {
    let work = tempfile::tempdir().unwrap();
    let p = |n: &str| work.path().join(n).to_str().unwrap().to_string();
    std::fs::write(p("etcd.env"), "ETCD_NAME=m1\nnot a variable line\n").unwrap();
    let out = kubeboot(&[
        "ensure",
        "--etcd-unit",
        "etcd.service",
        "--etcd-env-file",
        &p("etcd.env"),
        "--lock-file",
        &p("start.lock"),
        "--recovery-root",
        &p("recovery"),
    ]);
    assert_fails(
        &out,
        2,
        &format!(
            "--etcd-unit etcd.service: its environment: {}: line 2: not KEY=VALUE",
            p("etcd.env")
        ),
    );
    assert!(!work.path().join("recovery").exists());
}
