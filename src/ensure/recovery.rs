//! What `ensure` does once it decided to recover: read the source into a new asset
//! dir under the recovery root, check that the evidence a recovery without etcd's
//! lock was decided on still holds, run `start`, and after a backup restore leave the
//! restore marker in the cluster.
//!
//! The local data dir (`Via::Local`) is read like a backup — its `member/snap/db`,
//! natively, read-only — but rendered as a *live* self-hosted etcd is: bootstrap-etcd
//! starts on the existing data dir, with no restore and no `etcd/` in the asset dir,
//! so `start` never moves it aside and no revision is rolled back or bumped. etcd
//! itself replays its WAL over that db, so nothing written before the crash is lost.

use std::path::{Path, PathBuf};

use super::decide::Via;
use super::{EnsureError, Options, evidence, marker};
use crate::assets;
use crate::backup::crypt::{self, CryptError, Identity, PlainSnapshot};
use crate::fsutil::{self, FsError};
use crate::health::etcd as health_etcd;
use crate::recover::{self, Request, Source};
use crate::render;
use crate::start::progress::Progress;
use crate::start::{self, StartOptions, Summary};
use crate::systemd::logfields::{self, Fields};

pub(super) async fn recover_and_start(
    opts: &Options,
    via: &Via,
    local: Option<&evidence::LocalData>,
    progress: &mut Progress,
) -> Result<(PathBuf, Summary), EnsureError> {
    let asset_dir = recover_into(opts, via).await?;
    match super::retention::prune_after(&opts.recovery_root, &asset_dir, opts.keep_recoveries) {
        Ok(removed) => say_removed(progress, &removed, opts.keep_recoveries),
        Err(e) => progress.warn(&format!("removing old recoveries: {e}")),
    }
    match via {
        // The recovery took time; the evidence must still hold before `start` moves
        // the data dir aside or starts an etcd on it.
        Via::Backup(b) => {
            recheck(
                opts,
                &format!("backup restore (revision {})", b.revision),
                local,
            )
            .await?
        }
        Via::Local { revision, .. } => {
            recheck(
                opts,
                &format!("start of the local etcd data (revision {revision})"),
                local,
            )
            .await?
        }
        Via::Apiserver | Via::Etcd => {}
    }
    progress.step(&format!(
        "starting the control plane from {}",
        asset_dir.display()
    ));
    let start_opts = StartOptions {
        asset_dir: asset_dir.clone(),
        ..opts.start.clone()
    };
    let summary = start::run(&start_opts, progress)
        .await
        .map_err(|error| EnsureError::Start {
            dir: asset_dir.display().to_string(),
            error,
        })?;
    Ok((asset_dir, summary))
}

/// One line per removed old recovery or stale temp (they held keys).
pub(super) fn say_removed(progress: &mut Progress, removed: &[PathBuf], keep: usize) {
    for old in removed {
        progress.step(&format!(
            "removed {} (keeping the {keep} newest earlier recoveries, --keep-recoveries; and no temp of a killed run)",
            old.display()
        ));
    }
}

/// Probes etcd and reads the local data dir again; `Err` when either differs from
/// what the recovery was decided on.
async fn recheck(
    opts: &Options,
    what: &str,
    decided_on: Option<&evidence::LocalData>,
) -> Result<(), EnsureError> {
    let etcd_answers = match &opts.etcd {
        Some(cfg) => health_etcd(cfg, &opts.etcd_prefix)
            .await
            .is_ok()
            .then(|| cfg.endpoints.join(",")),
        None => None,
    };
    let now = evidence::read(&opts.etcd_data_dir, &opts.start.pod_manifest_dir);
    match evidence::changed(decided_on, &now, etcd_answers.as_deref()) {
        Some(why) => Err(EnsureError::Changed(format!(
            "{what} aborted before anything was moved: {why}; run kubeboot ensure again to decide anew"
        ))),
        None => Ok(()),
    }
}

/// Recovers from `via` into a new dir under the recovery root.
async fn recover_into(opts: &Options, via: &Via) -> Result<PathBuf, EnsureError> {
    let mut source = match via {
        Via::Apiserver => Source::Apiserver {
            kubeconfig: opts.kubeconfig.clone(),
            request_timeout: opts.request_timeout,
        },
        Via::Etcd => match &opts.etcd {
            Some(cfg) => Source::Etcd(cfg.clone()),
            None => return Err(EnsureError::Failed("etcd chosen but not configured".into())),
        },
        Via::Backup(b) => Source::Snapshot {
            file: b.snapshot.clone(),
            skip_hash_check: false,
            // Read, not mapped: a bad page is an error here, not an exit.
            map_or_exit: None,
        },
        // A data-dir db has no snapshot trailer to check.
        Via::Local { dir, .. } => Source::Snapshot {
            file: dir.join(evidence::DB),
            skip_hash_check: true,
            // Read, not mapped: a bad page is an error here, not an exit.
            map_or_exit: None,
        },
    };
    let kind = match via {
        Via::Local { .. } => "local-etcd-data",
        _ => source.kind(),
    };
    // Kept until the recovery below has read the snapshot (its bytes go into the
    // asset dir); the decrypted copy is removed when this drops, on every exit.
    let plain = match (&mut source, via) {
        (Source::Snapshot { file, .. }, Via::Backup(_)) => {
            let plain = decrypt_backup(file, opts.identity.as_ref(), &opts.recovery_root)
                .map_err(|e| *e)?;
            if let Some(p) = &plain {
                *file = p.path().to_path_buf();
            }
            plain
        }
        _ => None,
    };
    let kubeconfig = std::fs::read(&opts.kubeconfig)
        .map_err(FsError::io("read kubeconfig", &opts.kubeconfig))?;
    let req = Request {
        source,
        // A downloaded or decrypted backup is read from a private copy; the record
        // names the backup (its URL when it came from the store).
        origin: match via {
            Via::Backup(b) => Some(b.source()),
            _ => None,
        },
        etcd_prefix: opts.etcd_prefix.clone(),
        kubeconfig: Some(kubeconfig),
        encryption: opts.encryption.as_ref(),
        render: opts.render.clone(),
        // Unattended: a field the descriptors cannot read is a warning in kubeboot.json and the
        // journal, not a reason to leave the control plane down.
        strict: false,
    };
    let recovered = recover::recover(&req).await;
    drop(plain);
    let mut recovered = recovered.map_err(|error| EnsureError::Recover { via: kind, error })?;
    if let Via::Local { dir, .. } = via {
        if !recovered.self_hosted_etcd {
            return Err(EnsureError::NoSource(format!(
                "the local etcd data in {} holds no self-hosted etcd (no kube-system/etcd DaemonSet): it is an external etcd's, which its operator must start; nothing was changed",
                dir.display()
            )));
        }
        // Rendered as from a live etcd: bootstrap-etcd on the data dir as it is.
        recovered.assets =
            render::render_with_backup(&recovered.cp, &opts.render, None).map_err(|e| {
                EnsureError::Recover {
                    via: kind,
                    error: e.into(),
                }
            })?;
        recovered.restored_revision = None;
    }
    // A root that is not root's own private dir is refused, its mode set back if it drifted.
    fsutil::private_dir(&opts.recovery_root)?;
    let dir = opts
        .recovery_root
        .join(format!("{}-{kind}", fsutil::timestamp_suffix()));
    assets::write(&dir, &recovered.assets, false).map_err(|e| {
        EnsureError::Failed(format!(
            "writing the recovered assets to {}: {e}",
            dir.display()
        ))
    })?;
    for line in recovered.summary(&dir) {
        logfields::info(Fields::step("recover").with_source(via.word()), &line);
    }
    Ok(dir)
}

/// An encrypted backup (`backup.tar.age`) as a plain snapshot in a private dir (0700,
/// the file 0600) under `recovery_root`, which is on the disk the recovery is written
/// to; `None` for a plain one. The backup was opened with the same identity when it was
/// chosen ([`crate::health::newest_backup`]); an identity that opens nothing now, or a
/// damaged archive, stops the recovery before anything is written, as
/// `recover --etcd-backup-file --identity` does (src/cmd/recover.rs).
pub(super) fn decrypt_backup(
    file: &Path,
    identity: Option<&Identity>,
    recovery_root: &Path,
) -> Result<Option<PlainSnapshot>, Box<EnsureError>> {
    let sealed = crypt::is_age_file(file)
        .map_err(|e| EnsureError::NoSource(format!("backup {}: {e}", file.display())))?;
    if !sealed {
        return Ok(None);
    }
    let Some(identity) = identity else {
        return Err(Box::new(EnsureError::NoSource(format!(
            "backup {} is encrypted with age and ensure has no --identity; nothing was changed",
            file.display()
        ))));
    };
    fsutil::private_dir(recovery_root).map_err(|e| Box::new(EnsureError::from(e)))?;
    let plain = crypt::unseal_snapshot(file, identity, recovery_root).map_err(|e| match e {
        CryptError::Archive { .. } => EnsureError::NoSource(format!("{e}; nothing was changed")),
        _ => EnsureError::Config(format!("{e}; nothing was changed")),
    })?;
    tracing::info!(archive = %file.display(), "decrypted its snapshot into a private dir, removed once it is read");
    Ok(Some(plain))
}

/// After a backup restore: the marker in the cluster and its local copy. A conflict
/// (another master restored during this run) is an error; a marker that cannot be
/// written is a warning (the restore itself is done).
pub(super) async fn leave_marker(
    opts: &Options,
    client: Option<&kube::Client>,
    backup_revision: i64,
    run_started: jiff::Timestamp,
    progress: &mut Progress,
) -> Result<(), EnsureError> {
    let cannot = |why: String| {
        format!(
            "the restore marker kube-system/{}: {why}; the other masters cannot see this restore",
            marker::NAME
        )
    };
    let Some(client) = client else {
        progress.warn(&cannot("no client for the kubeconfig".into()));
        return Ok(());
    };
    match marker::write(client, &opts.node_name, backup_revision, run_started).await {
        Ok(m) => {
            progress.step(&format!("restore marker written: {}", m.describe()));
            if let Err(e) = marker::save(&opts.recovery_root, &m) {
                progress.warn(&format!("the local copy of the restore marker: {e}"));
            }
            Ok(())
        }
        Err(why) if why.starts_with("two restores") => Err(EnsureError::Refused(why)),
        Err(why) => {
            progress.warn(&cannot(why));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    fn key(dir: &Path, name: &str) -> (PathBuf, String) {
        let id = age::x25519::Identity::generate();
        let path = dir.join(name);
        std::fs::write(&path, format!("{}\n", id.to_string().expose_secret())).unwrap();
        (path, id.to_public().to_string())
    }

    /// A sealed archive holding `snapshot.db` = `snap`, in `dir`.
    fn sealed(dir: &Path, public: &str, snap: &[u8]) -> PathBuf {
        std::fs::write(dir.join("snapshot.db"), snap).unwrap();
        let r = crypt::recipients(&[public.to_string()], &[]).unwrap();
        let out = dir.join(crypt::ARCHIVE);
        crypt::seal(dir, &["snapshot.db".to_string()], &r, &out).unwrap();
        std::fs::remove_file(dir.join("snapshot.db")).unwrap();
        out
    }

    #[test]
    fn an_encrypted_backup_is_decrypted_privately_under_the_recovery_root_until_dropped() {
        let t = tempfile::tempdir().unwrap();
        let (id_file, public) = key(t.path(), "id.key");
        let archive = sealed(t.path(), &public, b"the snapshot");
        let root = t.path().join("recovery");
        let id = Identity::load(&id_file).unwrap();
        let plain = decrypt_backup(&archive, Some(&id), &root).unwrap().unwrap();
        assert!(plain.path().starts_with(&root));
        assert_eq!(std::fs::read(plain.path()).unwrap(), b"the snapshot");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(plain.dir()), 0o700);
        assert_eq!(mode(plain.path()), 0o600);
        let dir = plain.dir().to_path_buf();
        drop(plain);
        assert!(!dir.exists(), "removed once dropped");

        // A plain snapshot is read as it is.
        let snap = t.path().join("snapshot.db");
        std::fs::write(&snap, b"plain").unwrap();
        assert!(decrypt_backup(&snap, Some(&id), &root).unwrap().is_none());
        assert!(decrypt_backup(&snap, None, &root).unwrap().is_none());
    }

    #[test]
    fn a_wrong_or_missing_identity_stops_before_anything_is_written() {
        let t = tempfile::tempdir().unwrap();
        let (_, public) = key(t.path(), "id.key");
        let (wrong_file, _) = key(t.path(), "wrong.key");
        let archive = sealed(t.path(), &public, b"the snapshot");
        let root = t.path().join("recovery");
        let wrong = Identity::load(&wrong_file).unwrap();
        let e = decrypt_backup(&archive, Some(&wrong), &root).unwrap_err();
        assert!(matches!(*e, EnsureError::Config(_)), "{e:?}");
        let said = e.to_string();
        assert!(said.contains(wrong_file.to_str().unwrap()), "{said}");
        assert!(!said.contains('\n'), "one line: {said}");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "nothing left");
        let e = decrypt_backup(&archive, None, &root).unwrap_err();
        assert!(matches!(*e, EnsureError::NoSource(_)), "{e:?}");
        assert!(e.to_string().contains("--identity"), "{e}");
    }
}
