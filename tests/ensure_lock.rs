//! The cluster-wide recovery lock of `ensure` against real etcd (Debian's 3.4).

use std::time::{Duration, Instant};

use kubeboot::ensure::lock::{self, Acquired};
use kubeboot::source::etcd::EtcdConfig;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn cfg(etcd: &Etcd) -> EtcdConfig {
    EtcdConfig::new(vec![etcd.endpoint()])
}

#[tokio::test]
async fn one_holder_at_a_time_and_a_dead_holder_expires() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    let cfg = cfg(&etcd);
    let ttl = Duration::from_secs(2);

    let Acquired::Held(a) = lock::acquire(&cfg, "master-1 since t0", ttl).await.unwrap() else {
        panic!("the first master must get the lock");
    };
    // Held past its TTL: the lease is kept alive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    match lock::acquire(&cfg, "master-2 since t1", ttl).await.unwrap() {
        Acquired::Busy(holder) => assert_eq!(holder, "master-1 since t0"),
        Acquired::Held(_) => panic!("two holders"),
    }
    a.release().await;
    let Acquired::Held(b) = lock::acquire(&cfg, "master-2 since t2", ttl).await.unwrap() else {
        panic!("released, so free");
    };

    // master-2 dies holding it (no release): the next master gets it once the lease
    // runs out, not before.
    drop(b);
    let died = Instant::now();
    let c = loop {
        match lock::acquire(&cfg, "master-3 since t3", ttl).await.unwrap() {
            Acquired::Held(c) => break c,
            Acquired::Busy(holder) => {
                assert_eq!(holder, "master-2 since t2");
                assert!(
                    died.elapsed() < Duration::from_secs(20),
                    "the lease never expired"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    c.release().await;
    let out = etcd.etcdctl(&["get", lock::KEY]).unwrap();
    assert!(out.stdout.is_empty(), "released: no key left");
}

/// Found by the machine drill `power-loss-etcd-lost`: the master that restored a host-run
/// etcd held the recovery lock while it recovered the control plane, and a member that
/// still had to join waited on that same lock, so the recovery waited on the member.
/// A member change has a lock of its own: exclusive among joiners, free of the
/// recovery's.
#[tokio::test]
async fn joining_members_take_their_own_lock_not_the_recovery_s() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    let cfg = cfg(&etcd);
    let ttl = Duration::from_secs(5);
    let Acquired::Held(recovery) = lock::acquire(&cfg, "master-2 since t0", ttl).await.unwrap()
    else {
        panic!("the recovery lock is free");
    };
    let Acquired::Held(join) =
        lock::acquire_key(&cfg, lock::MEMBER_KEY, "master-3 joining etcd", ttl)
            .await
            .unwrap()
    else {
        panic!("a member may join while the control plane is recovered");
    };
    match lock::acquire_key(&cfg, lock::MEMBER_KEY, "master-1 joining etcd", ttl)
        .await
        .unwrap()
    {
        Acquired::Busy(holder) => assert_eq!(holder, "master-3 joining etcd"),
        Acquired::Held(_) => panic!("two members changing the cluster at once"),
    }
    join.release().await;
    // What a master that finds the control plane un-Ready asks before reporting it
    // (exit 6): is another master recovering it right now?
    assert_eq!(
        lock::holder(&cfg).await.unwrap().as_deref(),
        Some("master-2 since t0")
    );
    recovery.release().await;
    assert_eq!(lock::holder(&cfg).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_etcd_is_an_error_naming_it() {
    let cfg = EtcdConfig {
        dial_timeout: Duration::from_secs(1),
        ..EtcdConfig::new(vec!["http://127.0.0.1:1".into()])
    };
    let err = lock::acquire(&cfg, "m", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

/// The pid of the etcd serving `endpoint` (found by its command line).
fn etcd_pid(endpoint: &str) -> u32 {
    let port = endpoint.rsplit(':').next().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("etcd") && cmd.contains(&format!("127.0.0.1:{port}")) {
            return pid;
        }
    }
    panic!("no etcd process for {endpoint}");
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// etcd stops answering (SIGSTOP: the connection stays open and every request
/// hangs, as over a half-open connection). The recovery the lock guards is stopped
/// before the lease can have run out, and says why.
#[tokio::test]
async fn a_renewal_that_hangs_stops_the_recovery_before_the_lease_can_expire() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    let cfg = cfg(&etcd);
    let ttl = Duration::from_secs(3);
    let Acquired::Held(mut held) = lock::acquire(&cfg, "master-1", ttl).await.unwrap() else {
        panic!("free");
    };
    // Renewed at least once while etcd answers.
    let first = held.last_renewed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.last_renewed() == first {
        assert!(Instant::now() < deadline, "never renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = etcd_pid(&etcd.endpoint());
    signal(pid, "-STOP");
    let stopped = Instant::now();
    // The guarded work never ends by itself; only the lost lock can end it.
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        held.guard(std::future::pending::<()>()),
    )
    .await;
    let at = Instant::now();
    signal(pid, "-CONT");
    let why = match outcome {
        Ok(Err(why)) => why,
        other => panic!("the recovery was not stopped: {other:?}"),
    };
    assert!(why.contains("this recovery stops here"), "{why}");
    // Before the lease could expire: its TTL counts from the last renewal sent.
    assert!(
        at < held.last_renewed() + ttl,
        "stopped {:?} after the last renewal (TTL {ttl:?})",
        at - held.last_renewed()
    );
    assert!(at > stopped);
}
