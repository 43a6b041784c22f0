//! The restore marker: the record, in the cluster itself, that a backup was restored.
//!
//! A backup restore takes no cluster lock (etcd is down), so "one restorer" rests on
//! policy (issue 11). The marker makes a restore visible to the other masters: once
//! the restored control plane is up, the node that restored writes the ConfigMap
//! `kube-system/kubeboot-recovery` through the api-server, naming itself, the backup's
//! revision and the time. Its `resourceVersion` is the etcd revision at which the
//! cluster's history after the restore begins (after `start`'s revision bump).
//!
//! Every `ensure` that sees the api-server up reads the marker and keeps a copy on its
//! own disk (`<recovery-root>/restore-marker.json`), because the marker is needed
//! exactly when the api-server is down: a backup at a revision not above the marker's
//! is from before that restore — the past the restore replaced, or the restored backup
//! itself — and restoring it would bring a different past back over the cluster's
//! present. It is refused (exit 4), naming the marker.
//!
//! When the marker is written, one from another node that is newer than this run's
//! start means two masters restored at the same time: that is reported as a conflict
//! (exit 4) and the other's marker is left as it is.
//!
//! What is still unsafe: two masters configured with two different restore-node names
//! that both restore before either can write its marker (the api-server is down for
//! both); and a master that never saw the marker (down all along) restoring a backup of
//! the old past whose revision is above the marker's (possible only when that past ran
//! on for more than `--etcd-revision-bump` revisions past the restored backup).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};

use super::decide::Backup;
use crate::fsutil::{self, FsError};

pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "kubeboot-recovery";
/// The file of the local copy, under the recovery root.
pub const FILE: &str = "restore-marker.json";

/// One restore, as the marker records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub node: String,
    pub backup_revision: i64,
    /// RFC 3339, this node's clock when it wrote the marker.
    pub restored_at: String,
    /// The ConfigMap's resourceVersion: the cluster's revision after the restore.
    pub cluster_revision: i64,
}

impl Marker {
    pub fn describe(&self) -> String {
        format!(
            "the restore of backup revision {} by {} at {} (the cluster's history since begins at revision {}, kube-system/{NAME})",
            self.backup_revision, self.node, self.restored_at, self.cluster_revision
        )
    }

    fn to_config_map(&self) -> ConfigMap {
        let data = [
            ("node", self.node.clone()),
            ("backup-revision", self.backup_revision.to_string()),
            ("restored-at", self.restored_at.clone()),
        ];
        ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(NAME.into()),
                namespace: Some(NAMESPACE.into()),
                ..Default::default()
            },
            data: Some(data.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            ..Default::default()
        }
    }

    /// The marker a ConfigMap holds, or why it holds none.
    pub fn from_config_map(cm: &ConfigMap) -> Result<Marker, String> {
        let get = |k: &str| {
            cm.data
                .as_ref()
                .and_then(|d| d.get(k))
                .cloned()
                .ok_or_else(|| format!("kube-system/{NAME} has no {k}"))
        };
        let number = |what: &str, s: &str| {
            s.parse::<i64>()
                .map_err(|e| format!("kube-system/{NAME}: {what} {s:?}: {e}"))
        };
        let rv = cm.metadata.resource_version.clone().unwrap_or_default();
        Ok(Marker {
            node: get("node")?,
            backup_revision: number("backup-revision", &get("backup-revision")?)?,
            restored_at: get("restored-at")?,
            cluster_revision: number("resourceVersion", &rv)?,
        })
    }
}

/// Why `backup` must not be restored over the history `marker` began, if it must not.
pub fn forbids(marker: &Marker, backup: &Backup) -> Option<String> {
    (backup.revision <= marker.cluster_revision).then(|| {
        format!(
            "backup {} (revision {}) is from before {}: restoring it would bring back a different past",
            backup.snapshot.display(),
            backup.revision,
            marker.describe()
        )
    })
}

/// Whether `existing` (read before writing this node's marker) shows another master
/// restoring during this run: written by another node at or after `run_started`.
pub fn conflict(existing: &Marker, node: &str, run_started: jiff::Timestamp) -> Option<String> {
    let at: jiff::Timestamp = existing.restored_at.parse().ok()?;
    (existing.node != node && at >= run_started).then(|| {
        format!(
            "two restores: {} while this node ({node}) restored too; the two masters are configured with different restore nodes (--backup-restore-node must be one value on every master)",
            existing.describe()
        )
    })
}

pub fn local_path(recovery_root: &Path) -> PathBuf {
    recovery_root.join(FILE)
}

/// The local copy; `None` when there is none or it cannot be read (said in the log).
pub fn load(path: &Path) -> Option<Marker> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("the restore marker {}: {e}", path.display());
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|e| tracing::warn!("the restore marker {}: {e}", path.display()))
        .ok()
}

/// Keeps `m` as the local copy (0600, in the 0700 recovery root).
pub fn save(recovery_root: &Path, m: &Marker) -> Result<(), FsError> {
    fsutil::private_dir(recovery_root)?;
    let bytes = serde_json::to_vec_pretty(m).unwrap_or_default();
    fsutil::write_atomic(&local_path(recovery_root), &bytes, 0o600)
}

/// The marker in the api-server (`Ok(None)`: none).
pub async fn read(client: &kube::Client) -> Result<Option<Marker>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    match api.get_opt(NAME).await {
        Ok(Some(cm)) => Marker::from_config_map(&cm).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("reading kube-system/{NAME}: {e}")),
    }
}

/// Writes this node's marker (create, or replace the older one); returns it with the
/// revision the api-server stored it at. `Err` names a conflict or the failure.
pub async fn write(
    client: &kube::Client,
    node: &str,
    backup_revision: i64,
    run_started: jiff::Timestamp,
) -> Result<Marker, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let mut m = Marker {
        node: node.into(),
        backup_revision,
        restored_at: crate::source::now_rfc3339(),
        cluster_revision: 0,
    };
    let mut cm = m.to_config_map();
    let pp = PostParams::default();
    let stored = match api.get_opt(NAME).await {
        Err(e) => return Err(format!("reading kube-system/{NAME}: {e}")),
        Ok(None) => api.create(&pp, &cm).await,
        Ok(Some(old)) => {
            if let Ok(existing) = Marker::from_config_map(&old)
                && let Some(c) = conflict(&existing, node, run_started)
            {
                return Err(c);
            }
            // Replace with the resourceVersion read: a concurrent writer gets a 409.
            cm.metadata.resource_version = old.metadata.resource_version.clone();
            api.replace(NAME, &pp, &cm).await
        }
    }
    .map_err(|e| format!("writing kube-system/{NAME}: {e}"))?;
    m.cluster_revision = Marker::from_config_map(&stored)?.cluster_revision;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker() -> Marker {
        Marker {
            node: "master-1".into(),
            backup_revision: 900,
            restored_at: "2026-12-02T13:00:00Z".into(),
            cluster_revision: 10_950,
        }
    }

    fn backup(revision: i64) -> Backup {
        Backup {
            snapshot: PathBuf::from(format!("/b/r{revision}/snapshot.db")),
            revision,
            self_hosted_etcd: true,
            from: None,
        }
    }

    #[test]
    fn a_backup_from_before_the_restore_is_forbidden_one_after_it_is_not() {
        let m = marker();
        for r in [100, 900, 950, 10_950] {
            let why = forbids(&m, &backup(r)).unwrap();
            assert!(
                why.contains(&format!(
                    "(revision {r}) is from before the restore of backup revision 900 by master-1"
                )) && why.contains("different past"),
                "{why}"
            );
        }
        assert_eq!(forbids(&m, &backup(10_951)), None);
    }

    #[test]
    fn another_node_restoring_during_this_run_is_a_conflict() {
        let m = marker();
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let why = conflict(&m, "master-2", t("2026-12-02T12:59:00Z")).unwrap();
        assert!(
            why.contains("two restores") && why.contains("by master-1"),
            "{why}"
        );
        // Its own earlier marker, or another's from before this run: no conflict.
        assert_eq!(conflict(&m, "master-1", t("2026-12-02T12:59:00Z")), None);
        assert_eq!(conflict(&m, "master-2", t("2026-12-02T13:00:01Z")), None);
    }

    #[test]
    fn the_config_map_round_trips_with_its_resource_version() {
        let m = marker();
        let mut cm = m.to_config_map();
        assert_eq!(cm.metadata.name.as_deref(), Some(NAME));
        assert!(
            Marker::from_config_map(&cm).is_err(),
            "no resourceVersion yet"
        );
        cm.metadata.resource_version = Some("10950".into());
        assert_eq!(Marker::from_config_map(&cm).unwrap(), m);
        cm.data.as_mut().unwrap().remove("node");
        assert!(
            Marker::from_config_map(&cm)
                .unwrap_err()
                .contains("no node")
        );
    }

    #[test]
    fn the_local_copy_is_kept_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("recovery");
        assert_eq!(load(&local_path(&root)), None);
        save(&root, &marker()).unwrap();
        assert_eq!(load(&local_path(&root)), Some(marker()));
        let mode = std::fs::metadata(local_path(&root))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(local_path(&root), b"{").unwrap();
        assert_eq!(load(&local_path(&root)), None);
    }
}
