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
