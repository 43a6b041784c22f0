//! `kubeboot recover --kubeconfig` when the api-server cannot be read: the project's
//! fake api-server (`tests/testkit/src/apiserver`) holds a loaded cluster, and each
//! refusal — a client cert from another CA, 401, 403 on the secrets list, 500, an
//! expired serving certificate — must give exit code 3 ("no recovery source could be
//! read", docs/design.md §2), one stderr line naming the endpoint and the cause, and no
//! recovery dir. A malformed kubeconfig is a configuration error: exit code 2.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_fails, kubeboot, stderr};
use kubeboot_testkit::apiserver::harness::Harness;
use kubeboot_testkit::apiserver::{Config, Fault};
use kubeboot_testkit::cluster;

/// A loaded cluster behind a fake api-server, with the runtime that serves it.
struct Served {
    harness: Harness,
    _runtime: tokio::runtime::Runtime,
}

fn serve(faults: &[&str]) -> Served {
    serve_with(faults, |_, _| Ok(()), true)
}

fn serve_with(
    faults: &[&str],
    edit: impl FnOnce(&mut Config, &Path) -> anyhow::Result<()>,
    ready: bool,
) -> Served {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let faults: Vec<Fault> = faults.iter().map(|f| Fault::parse(f).unwrap()).collect();
    let edit = move |c: &mut Config, dir: &Path| {
        c.faults = faults;
        edit(c, dir)
    };
    let harness = runtime
        .block_on(async {
            if ready {
                Harness::start_with(edit).await
            } else {
                Harness::start_unready_with(edit).await
            }
        })
        .expect("start etcd + fake-apiserver");
    cluster::load_into(&harness.etcd).expect("load the test cluster");
    Served {
        harness,
        _runtime: runtime,
    }
}

/// Runs `recover --kubeconfig K` into a fresh dir; returns the output and the dir.
fn recover(kubeconfig: &Path, work: &Path) -> (std::process::Output, PathBuf) {
    let dir = work.join("out");
    let out = kubeboot(&[
        "recover",
        "--recovery-dir",
        dir.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--apiserver-timeout",
        "20s",
    ]);
    (out, dir)
}

/// Exit 3, one error line naming the endpoint and (any of) the causes, no recovery dir.
fn assert_unreadable(out: &std::process::Output, dir: &Path, url: &str, causes: &[&str]) {
    assert_fails(out, 3, url);
    let err = stderr(out);
    let line = err
        .lines()
        .find(|l| l.starts_with("kubeboot: error:"))
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        causes.iter().any(|c| line.contains(&c.to_lowercase())),
        "error {line:?} names none of {causes:?}"
    );
    let empty = !dir.exists() || std::fs::read_dir(dir).unwrap().next().is_none();
    assert!(empty, "{} was written", dir.display());
}

#[test]
fn the_fake_serves_a_recovery_so_the_refusals_below_are_the_faults() {
    let s = serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let (out, dir) = recover(&s.harness.kubeconfig, work.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("bootstrap-manifests").is_dir());
}

#[test]
fn a_client_cert_from_another_ca_is_refused() {
    let s = serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let pki = &s.harness.pki;
    let kubeconfig = work.path().join("stranger.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: intruder\n  user:\n    client-certificate: {}\n    client-key: {}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: intruder}}\ncurrent-context: fake\n",
            s.harness.server.url(),
            pki.ca_cert.display(),
            pki.stranger_cert.display(),
            pki.stranger_key.display()
        ),
    )
    .unwrap();
    let (out, dir) = recover(&kubeconfig, work.path());
    let url = s.harness.server.url();
    assert_unreadable(&out, &dir, &url, &["UnknownCA"]);
    assert_fails(&out, 3, "refused the kubeconfig's client certificate");
}

#[test]
fn an_injected_401_is_refused() {
    let s = serve(&["GET:/api/v1/namespaces/kube-system/configmaps=401"]);
    let work = tempfile::tempdir().unwrap();
    let (out, dir) = recover(&s.harness.kubeconfig, work.path());
    let url = s.harness.server.url();
    assert_unreadable(&out, &dir, &url, &["401"]);
    assert_fails(&out, 3, "Unauthorized");
}

#[test]
fn a_403_on_the_secrets_list_is_refused() {
    let s = serve(&["GET:/api/v1/namespaces/kube-system/secrets=403"]);
    let work = tempfile::tempdir().unwrap();
    let (out, dir) = recover(&s.harness.kubeconfig, work.path());
    let url = s.harness.server.url();
    assert_unreadable(&out, &dir, &url, &["403"]);
    assert_fails(&out, 3, "Forbidden");
    assert_fails(&out, 3, "secrets");
}

#[test]
fn a_500_after_two_good_lists_is_refused() {
    let s = serve(&["GET:/apis/apps/v1/namespaces/kube-system/daemonsets=500"]);
    let work = tempfile::tempdir().unwrap();
    let (out, dir) = recover(&s.harness.kubeconfig, work.path());
    let url = s.harness.server.url();
    assert_unreadable(&out, &dir, &url, &["500"]);
    assert_fails(&out, 3, "daemonsets");
}

#[test]
fn an_expired_serving_certificate_is_refused() {
    let s = serve_with(
        &[],
        |c, dir| {
            c.tls_cert_file = Some(dir.join("pki/apiserver-expired.crt"));
            c.tls_private_key_file = Some(dir.join("pki/apiserver-expired.key"));
            Ok(())
        },
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let (out, dir) = recover(&s.harness.kubeconfig, work.path());
    let url = s.harness.server.url();
    assert_unreadable(&out, &dir, &url, &["expired"]);
}

#[test]
fn a_malformed_kubeconfig_is_a_config_error() {
    let s = serve(&[]);
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.kubeconfig");
    std::fs::write(&bad, "apiVersion: v1\nkind: Config\nclusters: [unclosed\n").unwrap();
    let (out, dir) = recover(&bad, work.path());
    assert_fails(&out, 2, bad.to_str().unwrap());
    assert!(!dir.exists());

    // Well-formed, but its client key does not exist: a config error (docs/design.md §2),
    // naming the kubeconfig field and the missing file.
    let text = std::fs::read_to_string(&s.harness.kubeconfig).unwrap();
    let missing = work.path().join("missing.key");
    let text = text.replace(
        s.harness.pki.admin_key.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    let broken = work.path().join("broken.kubeconfig");
    std::fs::write(&broken, text).unwrap();
    let (out, dir) = recover(&broken, work.path());
    assert_fails(&out, 2, "client-key");
    assert_fails(&out, 2, "missing.key");
    assert!(!dir.exists());
}
