//! The fake api-server's RBAC policy cache when a request goes away while it reloads:
//! the dead-master drill once ran into an api-server that refused everyone (anonymous
//! `/readyz`, the scheduler's lease) for over a minute after its first reload was cut
//! short by a client that left, because the cache had been marked fresh with nothing in
//! it.

use anyhow::Result;
use futures::FutureExt;
use kubeboot_testkit::apiserver::authz::{self, Decision};
use kubeboot_testkit::apiserver::bootstrap_policy;
use kubeboot_testkit::apiserver::rbac::{self, Policy};
use kubeboot_testkit::apiserver::store::{EtcdConfig, Store};
use kubeboot_testkit::apiserver::tls::User;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_cut_short_is_done_again_by_the_next_request() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(|| Etcd::start(EtcdOptions::default())).await??;
    let config = EtcdConfig {
        servers: vec![etcd.endpoint()],
        ..EtcdConfig::default()
    };
    let store = Store::new("/registry", config, None);
    bootstrap_policy::ensure(&store)
        .await
        .map_err(|e| anyhow::anyhow!("seeding the policy: {}", e.message))?;
    let anonymous = User {
        name: authz::ANONYMOUS.into(),
        groups: vec![authz::UNAUTHENTICATED.into()],
    };
    let readyz = authz::request_attributes(&anonymous, "GET", "/readyz", "");

    let policy = Policy::default();
    // A request polls the reload once (it is waiting on etcd) and is dropped, as when
    // its client hangs up.
    assert!(
        policy.snapshot(&store).now_or_never().is_none(),
        "the reload did not wait on etcd; the test proves nothing"
    );
    let snapshot = policy.snapshot(&store).await;
    let (decision, why) = rbac::authorize(&snapshot, &readyz);
    assert_eq!(
        decision,
        Decision::Allow,
        "anonymous GET /readyz after a reload was cut short: {why}"
    );
    Ok(())
}
