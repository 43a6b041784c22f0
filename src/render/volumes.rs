//! Secret, ConfigMap and projected volumes become hostPath volumes over files in `tls/`.
//!
//! A static pod cannot read API objects, so the data a self-hosted pod mounts is written
//! into the asset dir and `start` copies `tls/` to `RenderOptions::secrets_host_dir`:
//! - secret `S` → `tls/secrets/S/<path>`, hostPath `<dir>/secrets/S`;
//! - configMap `C` → `tls/config-maps/C/<path>`, hostPath `<dir>/config-maps/C`;
//! - projected volume `V` of pod `P` → `tls/projected/P/V/<path>`, hostPath
//!   `<dir>/projected/P/V`, holding the merged secret and configMap sources.
//!
//! Unlike bootkube this honours `items` (only the listed keys, at their `path`),
//! `defaultMode`/`mode`, `optional` (a missing object or key is skipped, otherwise it
//! is an error) and ConfigMap `binaryData`. Secret and ConfigMap dirs are shared by
//! every volume naming that object (bootkube's layout, which runbooks rely on), so a
//! second volume of the same object sees the union of files; two volumes that would
//! give one path different bytes are an error.
//!
//! Modes: the mode Kubernetes would give the file (`mode`, else `defaultMode`, else
//! 0644), then with group and other bits removed, and for Secret data also the execute
//! bit (Secret data is never wider than 0600). ConfigMaps in kube-system often carry
//! kubeconfigs and encryption configs, and the bootstrap pods run as root, so group and
//! other bits would only widen exposure; this keeps all of `tls/` private (0600 files,
//! 0700 dirs) while keeping an owner's execute bit on a script.
//!
//! Projected `serviceAccountToken`, `downwardAPI`, `clusterTrustBundle` and
//! `podCertificate` sources cannot be served from a host file (there is no service
//! account or pod identity to issue them for), so they are dropped with a warning in
//! `kubeboot.json`; controller-manager and scheduler get `--kubeconfig` instead of a
//! token. Volumes that need the API or a CSI driver (PVC, ephemeral, CSI) are an error.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, HostPathVolumeSource, KeyToPath, Secret, Volume, VolumeProjection,
};

use super::RenderError;
use super::select::Parent;
use crate::model::AssetDir;
pub(super) use crate::staticpod::{check_name, check_rel_path};

/// Which kind of object a volume reads, for paths, modes and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Secret,
    ConfigMap,
}

impl Source {
    fn noun(self) -> &'static str {
        match self {
            Source::Secret => "secret",
            Source::ConfigMap => "configmap",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Source::Secret => "secrets",
            Source::ConfigMap => "config-maps",
        }
    }

    /// The mode of one file, see the module doc.
    pub fn file_mode(self, item_mode: Option<i32>, default_mode: Option<i32>) -> u32 {
        let k8s = item_mode
            .or(default_mode)
            .map_or(0o644, |m| u32::try_from(m).unwrap_or(0o644) & 0o777);
        match self {
            Source::Secret => k8s & 0o600,
            Source::ConfigMap => k8s & 0o700,
        }
    }
}

/// The Secrets and ConfigMaps of a control plane, by namespace and name, as key → bytes.
#[derive(Debug, Default)]
pub struct Objects {
    secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
    config_maps: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Objects {
    pub fn new(secrets: &[Secret], config_maps: &[ConfigMap]) -> Self {
        let mut o = Objects::default();
        for s in secrets {
            let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in s.data.iter().flatten() {
                data.insert(k.clone(), v.0.clone());
            }
            // stringData is write-only in the API, but a hand-written source may carry
            // it; like the api-server, it wins over data.
            for (k, v) in s.string_data.iter().flatten() {
                data.insert(k.clone(), v.clone().into_bytes());
            }
            o.secrets.insert(key(&s.metadata), data);
        }
        for c in config_maps {
            let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in c.binary_data.iter().flatten() {
                data.insert(k.clone(), v.0.clone());
            }
            for (k, v) in c.data.iter().flatten() {
                data.insert(k.clone(), v.clone().into_bytes());
            }
            o.config_maps.insert(key(&c.metadata), data);
        }
        o
    }

    fn get(
        &self,
        source: Source,
        namespace: &str,
        name: &str,
    ) -> Option<&BTreeMap<String, Vec<u8>>> {
        let map = match source {
            Source::Secret => &self.secrets,
            Source::ConfigMap => &self.config_maps,
        };
        map.get(&(namespace.to_string(), name.to_string()))
    }
}

/// The `tls/` files collected so far, remembering who wrote each to report conflicts.
#[derive(Debug, Default)]
pub struct Files {
    map: BTreeMap<String, (Vec<u8>, u32, String)>,
}

impl Files {
    fn add(
        &mut self,
        path: String,
        bytes: &[u8],
        mode: u32,
        owner: &str,
    ) -> Result<(), RenderError> {
        match self.map.get_mut(&path) {
            Some((old, old_mode, first)) => {
                if old.as_slice() != bytes {
                    return Err(RenderError::Conflict {
                        owner: owner.to_string(),
                        path,
                        other: first.clone(),
                    });
                }
                // Two volumes ask for different modes: keep the narrower one.
                *old_mode &= mode;
            }
            None => {
                self.map
                    .insert(path, (bytes.to_vec(), mode, owner.to_string()));
            }
        }
        Ok(())
    }

    pub fn into_assets(self, out: &mut AssetDir) {
        for (path, (bytes, mode, _)) in self.map {
            out.insert(path, bytes, mode);
        }
    }
}

/// Everything a volume conversion needs besides the volume itself.
pub struct Ctx<'a, 'p> {
    pub parent: &'a Parent<'p>,
    pub objects: &'a Objects,
    pub secrets_host_dir: &'a str,
    pub files: &'a mut Files,
    pub warnings: &'a mut Vec<String>,
}

impl Ctx<'_, '_> {
    fn owner(&self) -> String {
        self.parent.to_string()
    }

    fn unsafe_path(&self, what: &'static str, path: &str, reason: &'static str) -> RenderError {
        RenderError::UnsafePath {
            owner: self.owner(),
            what,
            path: path.to_string(),
            reason,
        }
    }

    /// Writes one object's files below `prefix`; returns how many were written.
    fn project(
        &mut self,
        source: Source,
        name: &str,
        items: Option<&[KeyToPath]>,
        default_mode: Option<i32>,
        optional: bool,
        prefix: &str,
    ) -> Result<usize, RenderError> {
        check_name(name).map_err(|r| self.unsafe_path(source.noun(), name, r))?;
        let ns = self.parent.namespace.clone();
        let Some(data) = self.objects.get(source, &ns, name) else {
            if optional {
                return Ok(0);
            }
            return Err(RenderError::MissingObject {
                owner: self.owner(),
                kind: source.noun(),
                name: name.to_string(),
            });
        };
        let wanted: Vec<(String, String, Option<i32>)> = match items {
            Some(items) if !items.is_empty() => items
                .iter()
                .map(|i| (i.key.clone(), i.path.clone(), i.mode))
                .collect(),
            _ => data.keys().map(|k| (k.clone(), k.clone(), None)).collect(),
        };
        let owner = self.owner();
        let mut written = 0;
        for (k, path, mode) in wanted {
            check_rel_path(&path).map_err(|r| self.unsafe_path("item path", &path, r))?;
            let Some(bytes) = data.get(&k) else {
                if optional {
                    continue;
                }
                return Err(RenderError::MissingKey {
                    owner,
                    kind: source.noun(),
                    name: name.to_string(),
                    key: k,
                });
            };
            let mode = source.file_mode(mode, default_mode);
            self.files
                .add(format!("{prefix}/{path}"), bytes, mode, &owner)?;
            written += 1;
        }
        Ok(written)
    }

    fn host_path(&self, rel: &str, files: usize) -> HostPathVolumeSource {
        HostPathVolumeSource {
            path: format!("{}/{rel}", self.secrets_host_dir.trim_end_matches('/')),
            // With files, a missing dir means `start` did not copy tls/: fail loudly.
            // Without (an optional object or key is absent), an empty dir is right.
            type_: Some(
                if files > 0 {
                    "Directory"
                } else {
                    "DirectoryOrCreate"
                }
                .into(),
            ),
        }
    }

    fn projection(
        &mut self,
        volume: &str,
        prefix: &str,
        p: &VolumeProjection,
        default_mode: Option<i32>,
    ) -> Result<usize, RenderError> {
        if let Some(s) = &p.secret {
            return self.project(
                Source::Secret,
                &s.name,
                s.items.as_deref(),
                default_mode,
                s.optional == Some(true),
                prefix,
            );
        }
        if let Some(c) = &p.config_map {
            return self.project(
                Source::ConfigMap,
                &c.name,
                c.items.as_deref(),
                default_mode,
                c.optional == Some(true),
                prefix,
            );
        }
        let what = if let Some(t) = &p.service_account_token {
            format!(
                "serviceAccountToken source (path {:?}): a bootstrap pod has no service account",
                t.path
            )
        } else if p.downward_api.is_some() {
            "downwardAPI source: its files cannot be rendered ahead of the pod".to_string()
        } else if p.cluster_trust_bundle.is_some() {
            "clusterTrustBundle source: it needs the API".to_string()
        } else if p.pod_certificate.is_some() {
            "podCertificate source: it needs the API".to_string()
        } else {
            "source of an unknown type".to_string()
        };
        self.warnings.push(format!(
            "{}: volume {volume:?} drops its {what}",
            self.owner()
        ));
        Ok(0)
    }

    /// Converts one volume in place.
    pub fn convert(&mut self, v: &mut Volume) -> Result<(), RenderError> {
        let unsupported = |what: &str| RenderError::Unsupported {
            owner: self.owner(),
            what: format!("volume {:?} is {what}", v.name),
        };
        if v.persistent_volume_claim.is_some() {
            return Err(unsupported("a persistentVolumeClaim"));
        }
        if v.ephemeral.is_some() {
            return Err(unsupported("an ephemeral volume"));
        }
        if v.csi.is_some() {
            return Err(unsupported("a CSI volume"));
        }
        if let Some(s) = v.secret.take() {
            let Some(name) = s.secret_name else {
                return Err(RenderError::Invalid {
                    owner: self.owner(),
                    reason: format!("secret volume {:?} has no secretName", v.name),
                });
            };
            let prefix = format!("tls/{}/{name}", Source::Secret.dir());
            let n = self.project(
                Source::Secret,
                &name,
                s.items.as_deref(),
                s.default_mode,
                s.optional == Some(true),
                &prefix,
            )?;
            v.host_path = Some(self.host_path(&format!("secrets/{name}"), n));
        } else if let Some(c) = v.config_map.take() {
            let prefix = format!("tls/{}/{}", Source::ConfigMap.dir(), c.name);
            let n = self.project(
                Source::ConfigMap,
                &c.name,
                c.items.as_deref(),
                c.default_mode,
                c.optional == Some(true),
                &prefix,
            )?;
            v.host_path = Some(self.host_path(&format!("config-maps/{}", c.name), n));
        } else if let Some(p) = v.projected.take() {
            check_name(&v.name).map_err(|r| self.unsafe_path("volume name", &v.name, r))?;
            let rel = format!("projected/{}/{}", self.parent.pod_name(), v.name);
            let prefix = format!("tls/{rel}");
            let mut n = 0;
            for src in p.sources.iter().flatten() {
                n += self.projection(&v.name, &prefix, src, p.default_mode)?;
            }
            v.host_path = Some(self.host_path(&rel, n));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mode_table() {
        let cases = [
            (Source::Secret, None, None, 0o600),
            (Source::Secret, None, Some(0o644), 0o600),
            (Source::Secret, None, Some(0o400), 0o400),
            (Source::Secret, Some(0o400), Some(0o644), 0o400),
            (Source::Secret, Some(0o755), None, 0o600),
            (Source::Secret, Some(-1), None, 0o600),
            (Source::ConfigMap, None, None, 0o600),
            (Source::ConfigMap, None, Some(0o755), 0o700),
            (Source::ConfigMap, Some(0o440), Some(0o755), 0o400),
        ];
        for (source, item, default, want) in cases {
            assert_eq!(
                source.file_mode(item, default),
                want,
                "{source:?} {item:?} {default:?}"
            );
        }
    }

    #[test]
    fn conflicting_bytes_are_an_error_same_bytes_narrow_the_mode() {
        let mut f = Files::default();
        f.add("tls/x".into(), b"a", 0o600, "o1").unwrap();
        f.add("tls/x".into(), b"a", 0o400, "o2").unwrap();
        assert!(matches!(
            f.add("tls/x".into(), b"b", 0o600, "o3"),
            Err(RenderError::Conflict { .. })
        ));
        let mut out = AssetDir::default();
        f.into_assets(&mut out);
        assert_eq!(out.get("tls/x").unwrap().mode, 0o400);
    }
}
