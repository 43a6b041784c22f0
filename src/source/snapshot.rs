//! The snapshot source: a file from `etcdctl snapshot save` or a data-dir
//! `member/snap/db`, read natively so a master with no etcd binary can still use its
//! backup.

use std::path::Path;

use super::{SourceError, Stored};
use crate::model::{SourceInfo, SourceKind};
use crate::snapshot::{Options, Snapshot};

/// Reads the control-plane objects out of a snapshot file; the snapshot comes back
/// too, for a restore of self-hosted etcd from the very bytes they came from.
pub fn read(
    path: &Path,
    opts: &Options,
    etcd_prefix: &str,
) -> Result<(Vec<Stored>, SourceInfo, Snapshot), SourceError> {
    let snap = Snapshot::open(path, opts)?;
    // kubeboot.json names the file so that it can be found again from anywhere.
    let location = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let (stored, info) = objects(&snap, &location.display().to_string(), etcd_prefix)?;
    Ok((stored, info, snap))
}

/// The control-plane objects of a snapshot already open (`backup` verifies the one it
/// just took this way); `location` names it in `kubeboot.json` and errors.
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
