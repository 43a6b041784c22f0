//! Progress of long reads (issue 15, finding 15): a live line on a terminal, `STATUS=`
//! under systemd, and not one control character anywhere else.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn snapshot(dir: &Path) -> std::path::PathBuf {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let snap = dir.join("snap.db");
    etcd.snapshot_save(&snap).unwrap();
    snap
}

fn kubeboot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubeboot"));
    c.env_remove("NOTIFY_SOCKET").env("TERM", "xterm");
    c
}

#[test]
fn inspect_shows_its_read_on_a_terminal_to_systemd_and_nowhere_else() {
    let work = tempfile::tempdir().unwrap();
    let snap = snapshot(work.path());
    let file = snap.to_str().unwrap();

    // Not a terminal, no systemd: the report and nothing else.
    let plain = kubeboot().args(["inspect", file]).output().unwrap();
    assert!(plain.status.success(), "{}", common::stderr(&plain));
    let both = [plain.stdout.as_slice(), plain.stderr.as_slice()].concat();
    assert!(!both.contains(&0x1b), "{}", String::from_utf8_lossy(&both));

    // Under systemd: the steps as STATUS=.
    let sock_path = work.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let out = kubeboot()
        .env("NOTIFY_SOCKET", &sock_path)
        .args(["inspect", file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let mib = std::fs::metadata(&snap).unwrap().len() as f64 / (1024.0 * 1024.0);
    assert!(
        got.contains(&format!("STATUS=reading {file}: 0 of {mib:.0} MiB (0%)")),
        "{got:?}"
    );
    assert!(got.contains(&format!("STATUS=checking {file}")), "{got:?}");

    // On a terminal (script(1) gives it one): the live line, erased before the report.
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} inspect {file}", env!("CARGO_BIN_EXE_kubeboot")),
            "/dev/null",
        ])
        .env("TERM", "xterm")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    let live = format!("\r\x1b[Kreading {file}: ");
    let erased = format!("\r\x1b[Kchecking {file}\r\x1b[K");
    assert!(
        screen.contains(&live) && screen.contains(&erased),
        "{screen:?}"
    );
    assert!(screen.contains("revision:"), "{screen:?}");
}
