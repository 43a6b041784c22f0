//! Restoring a self-hosted etcd from a backup: what `recover --etcd-backup-file`
//! adds when the control plane has an etcd DaemonSet/Deployment (`k8s-app=etcd`).
//!
//! With a live source (etcd or the api-server) etcd is still running and
//! `bootstrap-etcd` starts on its existing data dir. With a backup, the data dir is lost
//! or wrong, so the asset dir also carries (docs/design.md §4):
//! - `etcd/snapshot.db`: the backup file's bytes exactly;
//! - `etcd/restore.json`: what `start` needs to install it: the snapshot's sha256 and
//!   revision, the etcd data dir *on the host* (to move the old one aside; recovery
//!   never deletes it, docs/design.md §5), the api-server's `--etcd-servers` and the asset
//!   files it reaches etcd with (to check the restored etcd serves);
//! - in `bootstrap-etcd`, a last init container `kubeboot-restore` that runs the etcd
//!   image's own restore tool from `<bootstrap-secrets-dir>/etcd-restore/snapshot.db`
//!   (where `start` copies `etcd/`) into the etcd container's `--data-dir`, as the same
//!   member (`--name`, `--initial-cluster`, `--initial-advertise-peer-urls`, which the
//!   kubelet expands from the same env as etcd's).
//!
//! The command is the image's own restore tool (`etcd_tool`). `--skip-hash-check` is
//! added only for a backup without the sha256 trailer (a raw `member/snap/db`), which
//! the restore would otherwise refuse. etcdctl (before 3.5) also refuses an existing
//! `--data-dir`, even an empty one, so with it the data dir must lie below its mount
//! point (which always exists); etcdutl accepts an empty one.
//!
//! Caveat: an init container re-runs when the kubelet recreates the pod sandbox, and
//! the restore then fails on the data dir it wrote. `start` replaces `bootstrap-etcd`
//! by the self-hosted pod soon after, so this window is short; the failure is loud.

use k8s_openapi::api::core::v1::{
    Container, EnvVar, HostPathVolumeSource, Pod, PodSpec, Volume, VolumeMount,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::etcd_tool::{Member, RestoreTool, bumps_revision, restore_command, restore_tool};
use super::flags::{self, join};
use super::kubeconfig_flag::runs;
use super::select::{ETCD, Parent};
use super::{RenderError, RenderOptions};
use crate::model::{AssetDir, MODE_SECRET};

/// Where the backup goes in the asset dir.
pub const SNAPSHOT_ASSET: &str = "etcd/snapshot.db";
/// Where its metadata goes.
pub const RESTORE_ASSET: &str = "etcd/restore.json";
/// The init container, and its hostPath volume.
pub const RESTORE_CONTAINER: &str = "kubeboot-restore";
/// Where that volume is mounted (read-only).
pub const RESTORE_MOUNT: &str = "/kubeboot-restore";
/// The volume's host dir below `RenderOptions::secrets_host_dir`.
pub const RESTORE_HOST_SUBDIR: &str = "etcd-restore";

/// A backup to restore self-hosted etcd from, as `recover` read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdBackup {
    /// The file's bytes, copied as they are (a mapping of the file, or a buffer).
    pub bytes: prost::bytes::Bytes,
    /// The store revision the snapshot reader found.
    pub revision: i64,
    /// Whether the file ends in `etcdctl snapshot save`'s sha256 trailer.
    pub has_trailer: bool,
    /// The whole file's sha256 in hex, when the reader already hashed it (the trailer
    /// was checked); hashed here otherwise.
    pub sha256: Option<String>,
}

/// `etcd/restore.json`; see the module doc. The client files are asset-dir paths,
/// `None` for a plain-http etcd or a file that is not in the asset dir.
#[derive(Debug, Serialize)]
struct RestoreJson {
    snapshot: &'static str,
    sha256: String,
    revision: i64,
    data_dir: String,
    etcd_servers: Vec<String>,
    client_ca: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    /// The restore tool moved the revision on itself (`--bump-revision`), so `start`
    /// need not.
    revision_bumped: bool,
}

/// The container of `spec` that runs `component` (or its only container).
fn container_of(spec: &PodSpec, component: &str) -> Option<usize> {
    spec.containers
        .iter()
        .position(|c| runs(c, component))
        .or_else(|| (spec.containers.len() == 1).then_some(0))
}

/// Adds the restore to the bootstrap etcd pod and `etcd/` to `out` when the control
/// plane has a self-hosted etcd; otherwise does nothing.
pub(super) fn restore(
    parents: &[Parent<'_>],
    pods: &mut [Pod],
    backup: &EtcdBackup,
    opts: &RenderOptions,
    out: &mut AssetDir,
    warnings: &mut Vec<String>,
) -> Result<(), RenderError> {
    let mut etcd = parents
        .iter()
        .zip(pods.iter_mut())
        .filter(|(p, _)| p.component == ETCD);
    let Some((parent, pod)) = etcd.next() else {
        return Ok(());
    };
    let owner = parent.to_string();
    if let Some((other, _)) = etcd.next() {
        return Err(RenderError::Invalid {
            owner,
            reason: format!("{other} is also a self-hosted etcd; kubeboot restores one"),
        });
    }
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    let (data_dir, revision_bumped) =
        add_init_container(spec, &owner, backup.has_trailer, opts, warnings)?;
    let apiserver = parents
        .iter()
        .zip(pods.iter())
        .find(|(p, _)| p.component == "kube-apiserver");
    let json = RestoreJson {
        snapshot: SNAPSHOT_ASSET,
        sha256: backup
            .sha256
            .clone()
            .unwrap_or_else(|| hex::encode(Sha256::digest(&backup.bytes))),
        revision: backup.revision,
        data_dir,
        revision_bumped,
        ..client_side(apiserver, opts, out, warnings)
    };
    let mut bytes = serde_json::to_vec_pretty(&json).map_err(RenderError::Report)?;
    bytes.push(b'\n');
    out.insert(SNAPSHOT_ASSET, backup.bytes.to_vec(), MODE_SECRET);
    out.insert(RESTORE_ASSET, bytes, MODE_SECRET);
    Ok(())
}

/// Adds the `kubeboot-restore` init container and volume; returns the host data dir and
/// whether the restore bumps the revision itself.
fn add_init_container(
    spec: &mut PodSpec,
    owner: &str,
    has_trailer: bool,
    opts: &RenderOptions,
    warnings: &mut Vec<String>,
) -> Result<(String, bool), RenderError> {
    let invalid = |reason: String| RenderError::Invalid {
        owner: owner.to_string(),
        reason,
    };
    let unsupported = |what: String| RenderError::Unsupported {
        owner: owner.to_string(),
        what,
    };
    let c = container_of(spec, ETCD)
        .and_then(|i| spec.containers.get(i))
        .ok_or_else(|| invalid("no container runs etcd, so kubeboot cannot restore it".into()))?;
    let m = Member::of(c).ok_or_else(|| {
        invalid(format!(
            "container {:?} has no --data-dir, so kubeboot does not know where to restore",
            c.name
        ))
    })?;
    if m.data_dir.contains("$(") || !m.data_dir.starts_with('/') {
        return Err(unsupported(format!(
            "--data-dir {:?} is not a plain absolute path, so kubeboot cannot find it on the host",
            m.data_dir
        )));
    }
    let secrets_dir = opts.secrets_host_dir.trim_end_matches('/');
    let (mount, host_data_dir) = match flags::resolve(spec, c, &m.data_dir) {
        Some(at) => match &at.volume.host_path {
            Some(h) if !h.path.starts_with(&format!("{secrets_dir}/")) => {
                (at.mount.clone(), join(&h.path, &at.rel))
            }
            _ => {
                return Err(unsupported(format!(
                    "--data-dir {} is on volume {:?}, not a hostPath, so a restore would not outlive the pod",
                    m.data_dir, at.volume.name
                )));
            }
        },
        None => {
            return Err(unsupported(format!(
                "--data-dir {} is in no volume, so a restore would not outlive the pod",
                m.data_dir
            )));
        }
    };
    let image = c.image.clone().unwrap_or_default();
    let (tool, known) = restore_tool(&image);
    let bump = bumps_revision(tool, &image);
    if tool == RestoreTool::Etcdctl
        && m.data_dir.trim_end_matches('/') == mount.mount_path.trim_end_matches('/')
    {
        // etcdctl 3.4 and older refuse any existing --data-dir, and a mount point
        // always exists; etcdutl accepts an empty one.
        return Err(unsupported(format!(
            "--data-dir {} is the mount point of volume {:?}, and etcdctl (image {image:?}, etcd before 3.5) cannot restore into an existing directory; use a directory below the mount",
            m.data_dir, mount.name
        )));
    }
    if !known {
        warnings.push(format!(
            "{owner}: image {image:?} names no etcd version; the restore uses etcdutl (etcd 3.5 and later)"
        ));
    }
    let mut env = c.env.clone().unwrap_or_default();
    if tool == RestoreTool::Etcdctl {
        env.retain(|e| e.name != "ETCDCTL_API");
        env.push(EnvVar {
            name: "ETCDCTL_API".into(),
            value: Some("3".into()),
            ..Default::default()
        });
    }
    let init = Container {
        name: RESTORE_CONTAINER.into(),
        image: c.image.clone(),
        image_pull_policy: c.image_pull_policy.clone(),
        command: Some(restore_command(tool, &m, has_trailer, bump)),
        env: (!env.is_empty()).then_some(env),
        security_context: c.security_context.clone(),
        volume_mounts: Some(vec![
            mount,
            VolumeMount {
                name: RESTORE_CONTAINER.into(),
                mount_path: RESTORE_MOUNT.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let inits = spec.init_containers.get_or_insert_with(Vec::new);
    if inits.iter().any(|i| i.name == RESTORE_CONTAINER) {
        return Err(invalid(format!(
            "init container name {RESTORE_CONTAINER:?} is already used"
        )));
    }
    inits.push(init);
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if volumes.iter().any(|v| v.name == RESTORE_CONTAINER) {
        return Err(invalid(format!(
            "volume name {RESTORE_CONTAINER:?} is already used"
        )));
    }
    volumes.push(Volume {
        name: RESTORE_CONTAINER.into(),
        host_path: Some(HostPathVolumeSource {
            path: format!("{secrets_dir}/{RESTORE_HOST_SUBDIR}"),
            type_: Some("Directory".into()),
        }),
        ..Default::default()
    });
    Ok((host_data_dir, bump))
}

/// The api-server's side of `restore.json`: `--etcd-servers` and its client files.
fn client_side(
    apiserver: Option<(&Parent<'_>, &Pod)>,
    opts: &RenderOptions,
    out: &AssetDir,
    warnings: &mut Vec<String>,
) -> RestoreJson {
    let mut json = RestoreJson {
        snapshot: SNAPSHOT_ASSET,
        sha256: String::new(),
        revision: 0,
        data_dir: String::new(),
        etcd_servers: vec![],
        client_ca: None,
        client_cert: None,
        client_key: None,
        revision_bumped: false,
    };
    let found = apiserver.and_then(|(parent, pod)| {
        let spec = pod.spec.as_ref()?;
        let c = spec.containers.get(container_of(spec, "kube-apiserver")?)?;
        Some((parent, spec, c))
    });
    let Some((parent, spec, c)) = found else {
        warnings.push(format!(
            "{RESTORE_ASSET}: no kube-apiserver container, so etcd_servers is empty"
        ));
        return json;
    };
    json.etcd_servers = flags::flag(c, "etcd-servers")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if json.etcd_servers.iter().all(|s| s.starts_with("http://")) {
        return json;
    }
    let mut asset = |flag: &str| {
        let path = flags::flag(c, flag)?;
        let rel = flags::resolve(spec, c, &path).and_then(|at| {
            let host = at.volume.host_path.as_ref()?;
            let dir = host
                .path
                .strip_prefix(opts.secrets_host_dir.trim_end_matches('/'))?
                .strip_prefix('/')?;
            Some(format!("tls/{}", join(dir, &at.rel)))
        });
        match rel.filter(|r| out.get(r).is_some()) {
            Some(r) => Some(r),
            None => {
                warnings.push(format!(
                    "{parent}: --{flag} {path} is not a file of the asset dir, so {RESTORE_ASSET} does not name it"
                ));
                None
            }
        }
    };
    json.client_ca = asset("etcd-cafile");
    json.client_cert = asset("etcd-certfile");
    json.client_key = asset("etcd-keyfile");
    json
}

#[cfg(test)]
#[path = "etcd_tests.rs"]
mod tests;
