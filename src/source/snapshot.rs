//! The snapshot source: a file from `etcdctl snapshot save` or a data-dir
//! `member/snap/db`, read natively so a master with no etcd binary can still use its
//! backup.

use super::{SourceError, Stored};
use crate::model::{SourceInfo, SourceKind};
use crate::snapshot::Snapshot;

/// The control-plane objects of a snapshot (`recover` reads its file this way, and
/// `backup` verifies the one it just took); `location` names it in `kubeboot.json` and
/// errors.
pub fn objects(
    snap: &Snapshot,
    location: &str,
    etcd_prefix: &str,
) -> Result<(Vec<Stored>, SourceInfo), SourceError> {
    let mut stored = Vec::new();
    for prefix in super::prefixes(etcd_prefix) {
        for kv in snap.prefix(prefix.as_bytes()) {
            let kv = kv?;
            stored.push(Stored {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                value: kv.value.to_vec(),
                mod_revision: kv.mod_revision,
            });
        }
    }
    let info = SourceInfo {
        kind: SourceKind::Snapshot,
        location: location.to_string(),
        revision: Some(snap.revision()),
        integrity: Some(snap.integrity().describe().to_string()),
        sha256: snap.file_sha256(),
        size: Some(snap.file_len()),
        read_at: super::now_rfc3339(),
    };
    Ok((stored, info))
}
