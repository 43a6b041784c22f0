//! A checkpoint's secret, configMap and projected volumes → hostPath dirs, and what the
//! daemon must write in each.
//!
//! Why it is data, not files: sanitizing is pure and runs every cycle, while reading
//! Secrets needs the api-server, which only the daemon talks to. A projected volume with
//! only downwardAPI sources stays as it is: the kubelet serves those for static pods and
//! keeps them current. Volumes the kubelet refuses for static pods (kubernetes#131837:
//! PVC, ephemeral, CSI, glusterfs, azureFile, a legacy driver's secretRef,
//! clusterTrustBundle and podCertificate sources, and any type it does not know) are an
//! error.

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, HostPathVolumeSource, KeyToPath, Pod, ProjectedVolumeSource, Volume,
    VolumeProjection,
};

use super::downward;
use super::sanitize::SanitizeError;

/// What to write into one hostPath dir of a checkpoint. Pure data: nothing is fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct Materialize {
    /// The volume's name in the pod.
    pub volume: String,
    /// The absolute host dir the volume names. It has `type: Directory`, so the daemon
    /// creates it (0700) even when every source is optional and absent.
    pub host_dir: String,
    /// The namespace of every object named in `content` (the pod's).
    pub namespace: String,
    /// Who must be able to read the files.
    pub owner: FileOwner,
    /// The files.
    pub content: Content,
}

/// Owner of the files: `uid` is the `runAsUser` of the containers mounting the volume
/// (`None`: not set, so root), `gid` the pod's `fsGroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileOwner {
    pub uid: Option<i64>,
    pub gid: Option<i64>,
}

/// The files of one dir.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Secret(ObjectFiles),
    ConfigMap(ObjectFiles),
    /// The sources of a projected volume, merged into the one dir in this order.
    Projected(Vec<Projection>),
}

/// Files from one Secret or ConfigMap, as its volume or projection says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFiles {
    pub name: String,
    /// Only these keys, at these paths; empty means every key at its own name (the daemon
    /// must then check each key is a plain file name: keys come from the object).
    pub items: Vec<Item>,
    /// The mode of files whose item has none (the projected volume's for a projection).
    pub default_mode: Option<i32>,
    /// A missing object or key is skipped rather than an error.
    pub optional: bool,
}

/// One key of an object, written at `path` (relative, checked) with `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub path: String,
    pub mode: Option<i32>,
}

/// One source of a projected volume.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    Secret(ObjectFiles),
    ConfigMap(ObjectFiles),
    /// Values of the parent pod, already resolved.
    DownwardApi {
        files: Vec<DownwardFile>,
        default_mode: Option<i32>,
    },
    /// A token the daemon requests (TokenRequest) for `service_account`, the parent's.
    /// It must not be bound to the parent pod: a bound token dies with its pod, and a
    /// checkpoint runs precisely when the parent is gone.
    ServiceAccountToken {
        service_account: String,
        audience: Option<String>,
        expiration_seconds: Option<i64>,
        path: String,
        default_mode: Option<i32>,
    },
}

/// One resolved downward API file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownwardFile {
    pub path: String,
    pub content: String,
    pub mode: Option<i32>,
}

pub(super) use crate::staticpod::{check_name, check_rel_path};

/// Everything a volume conversion needs besides the volume.
pub(super) struct Ctx<'a> {
    /// `namespace/name`, for messages.
    pub pod: &'a str,
    pub parent: &'a Pod,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The checkpoint root, absolute, without a trailing `/`.
    pub root: &'a str,
    pub service_account: &'a str,
}

impl Ctx<'_> {
    fn unsupported(&self, what: String) -> SanitizeError {
        SanitizeError::Unsupported {
            pod: self.pod.to_string(),
            what,
        }
    }

    fn unsafe_path(&self, what: &'static str, value: &str, reason: &'static str) -> SanitizeError {
        SanitizeError::UnsafePath {
            pod: self.pod.to_string(),
            what,
            value: value.to_string(),
            reason,
        }
    }

    /// The volume as the checkpoint has it, and what to write for it if it is a hostPath now.
    /// `owner` is asked only for a volume that becomes a host dir.
    pub fn convert(
        &self,
        v: Volume,
        owner: impl FnOnce(&str) -> Result<FileOwner, SanitizeError>,
    ) -> Result<(Volume, Option<Materialize>), SanitizeError> {
        let (kind, content) = if let Some(s) = &v.secret {
            let Some(name) = s.secret_name.clone().filter(|n| !n.is_empty()) else {
                return Err(SanitizeError::Invalid {
                    pod: self.pod.to_string(),
                    reason: format!("secret volume {:?} has no secretName", v.name),
                });
            };
            let files = self.files(name, s.items.as_deref(), s.default_mode, s.optional)?;
            ("secrets", Content::Secret(files))
        } else if let Some(c) = &v.config_map {
            let files = self.files(
                c.name.clone(),
                c.items.as_deref(),
                c.default_mode,
                c.optional,
            )?;
            ("configmaps", Content::ConfigMap(files))
        } else if let Some(p) = &v.projected {
            if p.sources.iter().flatten().all(downward_only) {
                return Ok((v, None));
            }
            ("projected", Content::Projected(self.projected(&v.name, p)?))
        } else if let Some(what) = refused(&v) {
            return Err(self.unsupported(format!("volume {:?} is {what}", v.name)));
        } else {
            return Ok((v, None));
        };
        check_name(&v.name).map_err(|r| self.unsafe_path("volume name", &v.name, r))?;
        let host_dir = format!(
            "{}/{kind}/{}/{}/{}",
            self.root, self.namespace, self.name, v.name
        );
        let volume = Volume {
            name: v.name.clone(),
            host_path: Some(HostPathVolumeSource {
                path: host_dir.clone(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        };
        let m = Materialize {
            owner: owner(&v.name)?,
            volume: v.name,
            host_dir,
            namespace: self.namespace.to_string(),
            content,
        };
        Ok((volume, Some(m)))
    }

    fn files(
        &self,
        name: String,
        items: Option<&[KeyToPath]>,
        default_mode: Option<i32>,
        optional: Option<bool>,
    ) -> Result<ObjectFiles, SanitizeError> {
        // The daemon puts it in an API path.
        check_name(&name).map_err(|r| self.unsafe_path("object name", &name, r))?;
        let items = items
            .unwrap_or_default()
            .iter()
            .map(|i| {
                check_rel_path(&i.path).map_err(|r| self.unsafe_path("item path", &i.path, r))?;
                Ok(Item {
                    key: i.key.clone(),
                    path: i.path.clone(),
                    mode: i.mode,
                })
            })
            .collect::<Result<_, SanitizeError>>()?;
        Ok(ObjectFiles {
            name,
            items,
            default_mode,
            optional: optional == Some(true),
        })
    }

    fn projected(
        &self,
        volume: &str,
        p: &ProjectedVolumeSource,
    ) -> Result<Vec<Projection>, SanitizeError> {
        let mode = p.default_mode;
        let mut out = Vec::new();
        for s in p.sources.iter().flatten() {
            out.push(if let Some(s) = &s.secret {
                Projection::Secret(self.files(
                    s.name.clone(),
                    s.items.as_deref(),
                    mode,
                    s.optional,
                )?)
            } else if let Some(c) = &s.config_map {
                Projection::ConfigMap(self.files(
                    c.name.clone(),
                    c.items.as_deref(),
                    mode,
                    c.optional,
                )?)
            } else if let Some(d) = &s.downward_api {
                Projection::DownwardApi {
                    files: self.downward(volume, d.items.as_deref().unwrap_or_default())?,
                    default_mode: mode,
                }
            } else if let Some(t) = &s.service_account_token {
                check_rel_path(&t.path).map_err(|r| self.unsafe_path("token path", &t.path, r))?;
                check_name(self.service_account)
                    .map_err(|r| self.unsafe_path("service account", self.service_account, r))?;
                Projection::ServiceAccountToken {
                    service_account: self.service_account.to_string(),
                    audience: t.audience.clone().filter(|a| !a.is_empty()),
                    expiration_seconds: t.expiration_seconds,
                    path: t.path.clone(),
                    default_mode: mode,
                }
            } else {
                let what = if s.cluster_trust_bundle.is_some() {
                    "a clusterTrustBundle source (it needs the API)"
                } else if s.pod_certificate.is_some() {
                    "a podCertificate source (it needs the API)"
                } else {
                    "a source of a type kubeboot does not know"
                };
                return Err(self.unsupported(format!("projected volume {volume:?} has {what}")));
            });
        }
        Ok(out)
    }

    fn downward(
        &self,
        volume: &str,
        items: &[DownwardAPIVolumeFile],
    ) -> Result<Vec<DownwardFile>, SanitizeError> {
        items
            .iter()
            .map(|i| {
                check_rel_path(&i.path).map_err(|r| self.unsafe_path("item path", &i.path, r))?;
                let content = match (&i.field_ref, &i.resource_field_ref) {
                    (Some(f), _) => downward::field(self.parent, &f.field_path).ok_or_else(|| {
                        self.unsupported(format!(
                            "projected volume {volume:?} reads field {:?}",
                            f.field_path
                        ))
                    })?,
                    (None, Some(r)) => {
                        return Err(self.unsupported(format!(
                            "projected volume {volume:?} reads resource {:?} (its value depends on the node)",
                            r.resource
                        )));
                    }
                    (None, None) => String::new(),
                };
                Ok(DownwardFile {
                    path: i.path.clone(),
                    content,
                    mode: i.mode,
                })
            })
            .collect()
    }
}

/// Whether a projected source is one the kubelet serves for a static pod.
fn downward_only(s: &VolumeProjection) -> bool {
    s.downward_api.is_some()
        && s.secret.is_none()
        && s.config_map.is_none()
        && s.service_account_token.is_none()
        && s.cluster_trust_bundle.is_none()
        && s.pod_certificate.is_none()
}

/// Why the kubelet refuses this (non secret/configMap/projected) volume in a static pod,
/// or `None` if it accepts it. Mirrors `HasAPIObjectReference` and `VisitPodSecretNames`.
fn refused(v: &Volume) -> Option<&'static str> {
    let secret_ref = [
        v.cephfs.as_ref().is_some_and(|s| s.secret_ref.is_some()),
        v.cinder.as_ref().is_some_and(|s| s.secret_ref.is_some()),
        v.flex_volume
            .as_ref()
            .is_some_and(|s| s.secret_ref.is_some()),
        v.iscsi.as_ref().is_some_and(|s| s.secret_ref.is_some()),
        v.rbd.as_ref().is_some_and(|s| s.secret_ref.is_some()),
        v.storageos.as_ref().is_some_and(|s| s.secret_ref.is_some()),
        v.scale_io.is_some(),
        v.azure_file.is_some(),
    ];
    let local = [
        v.aws_elastic_block_store.is_some(),
        v.azure_disk.is_some(),
        v.cephfs.is_some(),
        v.cinder.is_some(),
        v.downward_api.is_some(),
        v.empty_dir.is_some(),
        v.fc.is_some(),
        v.flex_volume.is_some(),
        v.flocker.is_some(),
        v.gce_persistent_disk.is_some(),
        v.git_repo.is_some(),
        v.host_path.is_some(),
        v.image.is_some(),
        v.iscsi.is_some(),
        v.nfs.is_some(),
        v.photon_persistent_disk.is_some(),
        v.portworx_volume.is_some(),
        v.quobyte.is_some(),
        v.rbd.is_some(),
        v.storageos.is_some(),
        v.vsphere_volume.is_some(),
    ];
    if v.persistent_volume_claim.is_some() {
        Some("a persistentVolumeClaim")
    } else if v.ephemeral.is_some() {
        Some("an ephemeral volume (it creates a PersistentVolumeClaim)")
    } else if v.csi.is_some() {
        Some("a CSI volume (it needs the CSIDriver object)")
    } else if v.glusterfs.is_some() {
        Some("a glusterfs volume (it reads Endpoints)")
    } else if secret_ref.contains(&true) {
        Some("a volume whose driver reads a Secret")
    } else if local.contains(&true) {
        None
    } else {
        Some("of a type kubeboot does not know")
    }
}
