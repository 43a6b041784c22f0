//! What the local etcd data dir says before a backup is restored over it.
//!
//! A backup restores the past. Before `ensure` lets one replace a self-hosted etcd's
//! data dir, it reads that dir's `member/snap/db` itself (docs/design.md §5: never
//! restore an older past over newer data): etcd may be stopped, or may not answer
//! for a reason that has nothing to do with its data (a certificate, a crash loop),
//! and then its data is the newest copy of the cluster there is.
//!
//! The read is read-only and in place: the file is opened `O_RDONLY` and parsed in
//! memory by kubeboot's own bbolt reader, never copied to disk, locked or written,
//! so it is safe while etcd runs. A read that races etcd's writes may fail to
//! parse; it is then `Unreadable`, and the re-read right before the restore
//! (which must give the same answer) catches a state that was only passing.
//!
//! With the data dir goes one more piece of evidence: whether a static pod on this
//! node runs etcd (the self-hosted etcd's activated checkpoint, or an etcd static pod
//! put there by hand). The kubelet will start that etcd on the data dir by itself,
//! however late; `ensure` must then wait for it, never start a second etcd on the same
//! data (the `slow-etcd` drill).

use std::io;
use std::path::{Path, PathBuf};

use crate::snapshot::{self, Snapshot};

/// The db file inside an etcd data dir.
pub const DB: &str = "member/snap/db";

/// What was found in the local etcd data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalState {
    /// No data dir, or no `member/snap/db` in it: nothing a restore could lose.
    Missing,
    /// There is a db, but it cannot be read; why, one line.
    Unreadable(String),
    /// A db that parses, holding this store revision.
    Intact { revision: i64 },
}

/// The local etcd data dir and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalData {
    pub dir: PathBuf,
    pub state: LocalState,
    /// A static pod manifest on this node that runs etcd (its file name), which the
    /// kubelet starts on the data dir by itself.
    pub etcd_pod: Option<String>,
}

impl LocalData {
    /// One phrase for the decision's message.
    pub fn describe(&self) -> String {
        let dir = self.dir.display();
        match &self.state {
            LocalState::Missing => format!("the local etcd data dir {dir} has no {DB}"),
            LocalState::Unreadable(why) => {
                format!("the local etcd data in {dir} is unreadable ({why})")
            }
            LocalState::Intact { revision } => {
                format!("the local etcd data in {dir} is intact at revision {revision}")
            }
        }
    }
}

/// The labels a pod that runs etcd carries: the rendered self-hosted etcd's
/// `k8s-app` (kept by its checkpoint), kubeadm's static pod's `component`.
const ETCD_LABELS: [(&str, &str); 2] = [("k8s-app", "etcd"), ("component", "etcd")];

/// The first static pod manifest in `manifest_dir` whose pod runs etcd, by its labels.
/// Files the kubelet ignores (dotfiles: `write_atomic`'s temp files) are skipped; an
/// unreadable or unparsable file is not evidence either way.
pub fn etcd_static_pod(manifest_dir: &Path) -> Option<String> {
    let mut names: Vec<_> = std::fs::read_dir(manifest_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.into_iter().find(|name| {
        let Ok(bytes) = std::fs::read(manifest_dir.join(name)) else {
            return false;
        };
        // JSON is YAML, so one parser reads both kinds of manifest.
        let Ok(meta) = serde_yaml_ng::from_slice::<PodMeta>(&bytes) else {
            return false;
        };
        let labels = meta.metadata.labels;
        ETCD_LABELS
            .iter()
            .any(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
    })
}

#[derive(serde::Deserialize)]
struct PodMeta {
    #[serde(default)]
    metadata: Meta,
}

#[derive(serde::Deserialize, Default)]
struct Meta {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

/// Reads `data_dir/member/snap/db`, read-only, and looks for a static pod of etcd in
/// `manifest_dir` (the kubelet's `--pod-manifest-path`).
pub fn read(data_dir: &Path, manifest_dir: &Path) -> LocalData {
    LocalData {
        dir: data_dir.to_path_buf(),
        state: read_state(data_dir),
        etcd_pod: etcd_static_pod(manifest_dir),
    }
}

/// What `data_dir/member/snap/db` holds, read-only.
pub fn read_state(data_dir: &Path) -> LocalState {
    let db = data_dir.join(DB);
    match std::fs::symlink_metadata(&db) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => LocalState::Missing,
        Err(e) => LocalState::Unreadable(format!("{}: {e}", db.display())),
        Ok(_) => {
            let opts = snapshot::Options {
                skip_hash_check: true,
                status: false,
                map_or_exit: None,
            };
            match Snapshot::open(&db, &opts) {
                Ok(s) => LocalState::Intact {
                    revision: s.revision(),
                },
                Err(e) => LocalState::Unreadable(e.to_string()),
            }
        }
    }
}

/// Why a restore decided on `decided_on` must not go ahead now, if it must not:
/// etcd answers (`etcd_answers` names it), or the data dir reads differently. Any
/// difference counts, even a damaged db becoming readable: the decision was made
/// on what was seen, and anything else is a new decision.
pub fn changed(
    decided_on: Option<&LocalData>,
    now: &LocalData,
    etcd_answers: Option<&str>,
) -> Option<String> {
    if let Some(endpoints) = etcd_answers {
        return Some(format!("etcd {endpoints} answers now"));
    }
    match decided_on {
        Some(before) if before == now => None,
        Some(before) if before.state == now.state => Some(format!(
            "a static pod that runs etcd on this node: before, {}; now, {}",
            before.etcd_pod.as_deref().unwrap_or("none"),
            now.etcd_pod.as_deref().unwrap_or("none")
        )),
        Some(before) => Some(format!(
            "the local etcd data changed: before, {}; now, {}",
            before.describe(),
            now.describe()
        )),
        None => Some(format!(
            "the local etcd data dir was not read before the decision; now, {}",
            now.describe()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real etcd data-dir db (tests/data/auger/README.md).
    fn fixture() -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/auger/boltdb/db"))
            .unwrap()
    }

    fn with_db(bytes: &[u8]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let db = t.path().join(DB);
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(&db, bytes).unwrap();
        t
    }

    fn at(state: LocalState) -> LocalData {
        LocalData {
            dir: PathBuf::from("/var/lib/etcd"),
            state,
            etcd_pod: None,
        }
    }

    /// Where no static pod is.
    fn no_manifests() -> PathBuf {
        PathBuf::from("/nonexistent/kubeboot-test/manifests")
    }

    #[test]
    fn a_restore_goes_ahead_only_on_the_evidence_it_was_decided_on() {
        let missing = at(LocalState::Missing);
        assert_eq!(changed(Some(&missing), &missing, None), None);
        let why = changed(Some(&missing), &missing, Some("https://10.0.0.10:2379")).unwrap();
        assert!(
            why.contains("etcd https://10.0.0.10:2379 answers now"),
            "{why}"
        );
        let back = at(LocalState::Intact { revision: 3 });
        let why = changed(Some(&missing), &back, None).unwrap();
        assert!(
            why.contains("has no member/snap/db") && why.contains("intact at revision 3"),
            "{why}"
        );
        let older = at(LocalState::Intact { revision: 2 });
        assert!(changed(Some(&older), &back, None).is_some());
        let bad = at(LocalState::Unreadable("torn page".into()));
        assert!(
            changed(
                Some(&bad),
                &at(LocalState::Unreadable("other".into())),
                None
            )
            .is_some()
        );
        assert!(changed(None, &missing, None).is_some());
        let with_pod = LocalData {
            etcd_pod: Some("kubeboot-checkpoint_kube-system_etcd-x.json".into()),
            ..missing.clone()
        };
        let why = changed(Some(&missing), &with_pod, None).unwrap();
        assert!(
            why.contains("now, kubeboot-checkpoint_kube-system_etcd-x.json"),
            "{why}"
        );
    }

    /// The activated checkpoint of the rendered etcd (JSON, `k8s-app: etcd`) and a
    /// kubeadm-style static pod (YAML, `component: etcd`) are found; other pods, temp
    /// files and garbage are not.
    #[test]
    fn a_static_pod_that_runs_etcd_is_found_by_its_labels() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path();
        assert_eq!(etcd_static_pod(&m.join("absent")), None);
        std::fs::write(
            m.join("kubeboot-checkpoint_kube-system_kube-apiserver-a.json"),
            r#"{"metadata":{"name":"kube-apiserver-a","labels":{"k8s-app":"kube-apiserver"}}}"#,
        )
        .unwrap();
        std::fs::write(m.join("garbage.yaml"), b"\x00: [").unwrap();
        std::fs::write(
            m.join(".kubeboot-checkpoint_kube-system_etcd-a.json.tmp-1"),
            r#"{"metadata":{"labels":{"k8s-app":"etcd"}}}"#,
        )
        .unwrap();
        assert_eq!(etcd_static_pod(m), None);
        std::fs::write(
            m.join("kubeboot-checkpoint_kube-system_etcd-a.json"),
            r#"{"metadata":{"name":"etcd-a","labels":{"k8s-app":"etcd","tier":"control-plane"}}}"#,
        )
        .unwrap();
        assert_eq!(
            etcd_static_pod(m).as_deref(),
            Some("kubeboot-checkpoint_kube-system_etcd-a.json")
        );
        let k = tempfile::tempdir().unwrap();
        std::fs::write(
            k.path().join("etcd.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  labels:\n    component: etcd\n",
        )
        .unwrap();
        assert_eq!(etcd_static_pod(k.path()).as_deref(), Some("etcd.yaml"));
    }

    /// A real data dir whose db appears between the decision and the restore (etcd
    /// came up and wrote it) stops the restore.
    #[test]
    fn a_db_that_appears_after_the_decision_stops_the_restore() {
        let t = tempfile::tempdir().unwrap();
        let before = read(t.path(), &no_manifests());
        assert_eq!(before.state, LocalState::Missing);
        let db = t.path().join(DB);
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(&db, fixture()).unwrap();
        let why = changed(Some(&before), &read(t.path(), &no_manifests()), None).unwrap();
        assert!(why.contains("intact at revision"), "{why}");
    }

    #[test]
    fn no_dir_and_no_db_are_missing() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            read(&t.path().join("absent"), &no_manifests()).state,
            LocalState::Missing
        );
        std::fs::create_dir_all(t.path().join("member/wal")).unwrap();
        assert_eq!(read(t.path(), &no_manifests()).state, LocalState::Missing);
    }

    #[test]
    fn a_real_data_dir_is_intact_at_its_revision_and_left_as_it_was() {
        let bytes = fixture();
        let t = with_db(&bytes);
        let got = read(t.path(), &no_manifests());
        let LocalState::Intact { revision } = got.state else {
            panic!("{got:?}")
        };
        assert!(revision > 0, "{revision}");
        assert_eq!(std::fs::read(t.path().join(DB)).unwrap(), bytes);
        assert!(got.describe().contains(&format!("revision {revision}")));
    }

    #[test]
    fn a_damaged_db_is_unreadable_and_named() {
        let mut bytes = fixture();
        bytes.truncate(4096);
        let t = with_db(&bytes);
        match read(t.path(), &no_manifests()).state {
            LocalState::Unreadable(why) => assert!(why.contains("member/snap/db"), "{why}"),
            s => panic!("{s:?}"),
        }
        let t = with_db(b"");
        assert!(matches!(
            read(t.path(), &no_manifests()).state,
            LocalState::Unreadable(_)
        ));
    }
}
