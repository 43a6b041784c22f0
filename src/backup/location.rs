//! Where a copy of a backup is: the backup dir on this node ("local"), or the object
//! store `backup --remote` copies to ("remote"). Every report that says where a backup
//! is (`backup list`'s `locations`) lists copies, not a path.

use std::path::PathBuf;

use serde::Serialize;

/// One place a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Location {
    /// A directory on this node: the backup's own dir under `--backup-dir`.
    Local { path: PathBuf },
    /// In the object store: `<store URL>/<backup name>`.
    Remote { url: String },
}

impl Location {
    /// The word reports print: `local`.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Local { .. } => "local",
            Location::Remote { .. } => "remote",
        }
    }

    /// Where, for people: the path, or the URL.
    pub fn address(&self) -> String {
        match self {
            Location::Local { path } => path.display().to_string(),
            Location::Remote { url } => url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_copy_serializes_with_its_kind() {
        let l = Location::Local {
            path: PathBuf::from("/var/lib/kubeboot/backups/20261126T023000Z-r9"),
        };
        assert_eq!(l.kind(), "local");
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"kind": "local", "path": "/var/lib/kubeboot/backups/20261126T023000Z-r9"})
        );
        let r = Location::Remote {
            url: "s3://b/p/20261126T023000Z-r9".into(),
        };
        assert_eq!(
            (r.kind(), r.address().as_str()),
            ("remote", "s3://b/p/20261126T023000Z-r9")
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"kind": "remote", "url": "s3://b/p/20261126T023000Z-r9"})
        );
    }
}
