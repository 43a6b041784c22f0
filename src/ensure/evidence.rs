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

/// Reads `data_dir/member/snap/db`, read-only.
pub fn read(data_dir: &Path) -> LocalData {
    let db = data_dir.join(DB);
    let state = match std::fs::symlink_metadata(&db) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => LocalState::Missing,
        Err(e) => LocalState::Unreadable(format!("{}: {e}", db.display())),
        Ok(_) => {
            let opts = snapshot::Options {
                skip_hash_check: true,
            };
            match Snapshot::open(&db, &opts) {
                Ok(s) => LocalState::Intact {
                    revision: s.revision(),
                },
                Err(e) => LocalState::Unreadable(e.to_string()),
            }
        }
    };
    LocalData {
        dir: data_dir.to_path_buf(),
        state,
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
        }
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
    }

    /// A real data dir whose db appears between the decision and the restore (etcd
    /// came up and wrote it) stops the restore.
    #[test]
    fn a_db_that_appears_after_the_decision_stops_the_restore() {
        let t = tempfile::tempdir().unwrap();
        let before = read(t.path());
        assert_eq!(before.state, LocalState::Missing);
        let db = t.path().join(DB);
        std::fs::create_dir_all(db.parent().unwrap()).unwrap();
        std::fs::write(&db, fixture()).unwrap();
        let why = changed(Some(&before), &read(t.path()), None).unwrap();
        assert!(why.contains("intact at revision"), "{why}");
    }

    #[test]
    fn no_dir_and_no_db_are_missing() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read(&t.path().join("absent")).state, LocalState::Missing);
        std::fs::create_dir_all(t.path().join("member/wal")).unwrap();
        assert_eq!(read(t.path()).state, LocalState::Missing);
    }

    #[test]
    fn a_real_data_dir_is_intact_at_its_revision_and_left_as_it_was() {
        let bytes = fixture();
        let t = with_db(&bytes);
        let got = read(t.path());
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
        match read(t.path()).state {
            LocalState::Unreadable(why) => assert!(why.contains("member/snap/db"), "{why}"),
            s => panic!("{s:?}"),
        }
        let t = with_db(b"");
        assert!(matches!(read(t.path()).state, LocalState::Unreadable(_)));
    }
}
