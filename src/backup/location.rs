//! Where a copy of a backup is. Today only the backup dir on this node ("local");
//! object storage (issue 14's next slice) adds a variant, and every report that says
//! where a backup is (`backup list`'s `locations`) already lists copies, not a path.

use std::path::PathBuf;

use serde::Serialize;

/// One place a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Location {
    /// A directory on this node: the backup's own dir under `--backup-dir`.
    Local { path: PathBuf },
}

impl Location {
    /// The word reports print: `local`.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Local { .. } => "local",
        }
    }

    /// Where, for people: the path (a URL once there are remote copies).
    pub fn address(&self) -> String {
        match self {
            Location::Local { path } => path.display().to_string(),
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
    }
}
