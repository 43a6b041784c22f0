//! `kubeboot ensure --identity` with a real encrypted backup of a real etcd (Debian's
//! etcd, then stopped), through the real binary: the api-server is down (nothing
//! listens), the kubelet's `/healthz` is a one-line HTTP server in the test, and
//! `--dry-run` shows the decision. An encrypted newest backup is chosen when the
//! identity opens it, and is never passed over for an older plain one when it does
//! not: without an identity, or with a wrong one, ensure refuses in one line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_fails, kubeboot, stderr, stdout};
use kubeboot::backup::catalog;
use kubeboot_testkit::cluster;
use kubeboot_testkit::etcd::{Etcd, EtcdOptions};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Node {
    work: tempfile::TempDir,
    kubelet: String,
}

impl Node {
    fn path(&self, p: &str) -> PathBuf {
        self.work.path().join(p)
    }

    /// `kubeboot ensure` for this node with `args` after the node's own flags.
    fn ensure(&self, args: &[&str]) -> std::process::Output {
        let kubeconfig = self.path("kubeconfig");
        fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
        )
        .unwrap();
        let p = |d: &str| self.path(d).to_str().unwrap().to_string();
        let mut all: Vec<String> = vec![
            "ensure".into(),
            "--kubeconfig".into(),
            p("kubeconfig"),
            "--kubelet-healthz-url".into(),
            self.kubelet.clone(),
            "--backup-dir".into(),
            p("backups"),
            "--recovery-root".into(),
            p("recovery"),
            "--pod-manifest-path".into(),
            p("manifests"),
            "--bootstrap-secrets-dir".into(),
            p("bootstrap-secrets"),
            "--lock-file".into(),
            p("start.lock"),
            "--etcd-data-dir".into(),
            p("etcd-data"),
            "--request-timeout".into(),
            "2s".into(),
            "--poll-interval".into(),
            "200ms".into(),
            "--etcd-dial-timeout".into(),
            "2s".into(),
            "--kubelet-unit=".into(),
            "--cri-socket=".into(),
            "--boot-grace".into(),
            "0s".into(),
            "--allow-backup-restore".into(),
            "--dry-run".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        kubeboot(&all)
    }

    /// Nothing may be written by a dry run or a refusal.
    fn assert_untouched(&self) {
        for d in ["recovery", "manifests", "bootstrap-secrets"] {
            assert!(!self.path(d).exists(), "{d} was written");
        }
    }

    /// `kubeboot backup` of `etcd` with `extra`, marked as one of a self-hosted etcd
    /// (the outer manifest's sums cover the files, not itself); returns its dir.
    fn backup(&self, etcd: &Etcd, extra: &[&str]) -> PathBuf {
        let dir = self.path("backups");
        let before: Vec<PathBuf> = catalog::scan(&dir)
            .map(|f| f.into_iter().map(|f| f.dir).collect())
            .unwrap_or_default();
        let lock = self.path("backup.lock");
        let endpoint = etcd.endpoint();
        let mut args = vec![
            "backup",
            "--etcd-servers",
            &endpoint,
            "--backup-dir",
            s(&dir),
            "--lock-file",
            s(&lock),
        ];
        args.extend_from_slice(extra);
        let out = kubeboot(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let b = catalog::scan(&dir)
            .unwrap()
            .into_iter()
            .map(|f| f.dir)
            .find(|d| !before.contains(d))
            .unwrap();
        let manifest = b.join(catalog::MANIFEST);
        let mut m: serde_json::Value =
            serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
        m["self_hosted_etcd"] = true.into();
        fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        b
    }
}

#[test]
fn an_encrypted_newest_backup_is_restored_only_with_an_identity_that_opens_it() {
    let etcd = Etcd::start(EtcdOptions::default()).unwrap();
    cluster::load_into(&etcd).unwrap();
    let node = Node {
        work: tempfile::tempdir().unwrap(),
        kubelet: common::healthz(),
    };
    let (right, public) = common::age_key_pair(node.work.path(), "ops.key");
    let (wrong, _) = common::age_key_pair(node.work.path(), "wrong.key");
    let plain = node.backup(&etcd, &[]);
    let out = etcd
        .etcdctl(&["put", "/kubeboot-test/after-the-plain-backup", "x"])
        .unwrap();
    assert!(out.status.success());
    let sealed = node.backup(&etcd, &["--recipient", &public]);
    let archive = sealed.join("backup.tar.age");
    assert!(archive.is_file() && !sealed.join("snapshot.db").exists());
    let revision = catalog::read_manifest(&sealed).unwrap().revision;
    let endpoint = etcd.endpoint();
    drop(etcd);
    let etcd_flags = ["--etcd-servers", endpoint.as_str()];

    // The identity opens it: the decision names the archive and its revision.
    let out = node.ensure(&[&etcd_flags[..], &["--identity", s(&right)]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with(&format!(
            "would recover from backup {} (revision {revision})",
            archive.display()
        )),
        "{said}"
    );
    node.assert_untouched();

    // The same from config.toml's [ensure] table.
    let config = node.path("config.toml");
    fs::write(&config, format!("[ensure]\nidentity = {:?}\n", s(&right))).unwrap();
    let check = kubeboot(&["--config", s(&config), "config", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let out = node.ensure(&[&etcd_flags[..], &["--config", s(&config)]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(s(&archive)), "{}", stdout(&out));

    // No identity: refused, saying how to give one; the older plain backup is not used.
    let out = node.ensure(&etcd_flags);
    assert_fails(&out, 3, "give ensure --identity FILE");
    assert_fails(&out, 3, s(&sealed));
    assert!(!stdout(&out).contains(s(&plain)), "{}", stdout(&out));

    // A wrong identity: one line naming the identity file, nothing written, and the
    // older plain backup is not used instead.
    let out = node.ensure(&[&etcd_flags[..], &["--identity", s(&wrong)]].concat());
    assert_fails(
        &out,
        3,
        &format!("not encrypted to any identity in {}", s(&wrong)),
    );
    assert!(!stdout(&out).contains("would recover"), "{}", stdout(&out));
    assert!(
        !stderr(&out).contains("AGE-SECRET-KEY"),
        "never a key in the log"
    );
    node.assert_untouched();

    // A file that holds no identity is a usage error before anything is probed.
    let empty = node.path("empty.key");
    fs::write(&empty, "# nothing\n").unwrap();
    let out = node.ensure(&[&etcd_flags[..], &["--identity", s(&empty)]].concat());
    assert_fails(&out, 2, s(&empty));
    node.assert_untouched();

    // A damaged archive cannot be restored by anyone: it is passed over like a damaged
    // plain backup, and the older whole one is chosen.
    let mut bytes = fs::read(&archive).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&archive, bytes).unwrap();
    let out = node.ensure(&[&etcd_flags[..], &["--identity", s(&right)]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(s(&plain)), "{}", stdout(&out));
    assert!(stderr(&out).contains("passed over"), "{}", stderr(&out));
    node.assert_untouched();
}
