//! `kubeboot render --self-hosted-etcd`, through the real binary: every manifest passes
//! the independent schema check, and what it cannot do (an external etcd as well, a
//! multi-member etcd) is a usage error. The recovery side is in
//! `selfhosted_etcd_restore.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::{kubeboot, stderr};
use kubeboot_testkit::validate;

fn render(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["render", "--asset-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    kubeboot(&args)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn render_self_hosted_etcd_gives_valid_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let out = render(
        &dir,
        &[
            "--self-hosted-etcd",
            "--api-servers",
            "https://127.0.1.1:6443",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut files = files_under(&dir.join("manifests"));
    files.extend(files_under(&dir.join("bootstrap-manifests")));
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"etcd.yaml".to_string()), "{names:?}");
    assert!(
        names.contains(&"bootstrap-etcd.yaml".to_string()),
        "{names:?}"
    );
    assert!(!dir.join("etcd").exists(), "a new cluster restores nothing");
    let apiserver =
        std::fs::read_to_string(dir.join("bootstrap-manifests/bootstrap-kube-apiserver.yaml"))
            .unwrap();
    assert!(apiserver.contains("--etcd-servers=https://127.0.1.1:2379"));
    validate::assert_valid(&files);
}

#[test]
fn render_self_hosted_etcd_bad_input_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    for args in [
        vec![
            "--self-hosted-etcd",
            "--etcd-servers",
            "https://10.0.0.1:2379",
        ],
        vec![
            "--self-hosted-etcd",
            "--api-servers",
            "https://10.0.0.1:6443,https://10.0.0.2:6443",
        ],
    ] {
        let out = render(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!dir.exists());
    }
}
