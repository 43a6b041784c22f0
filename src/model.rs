//! The plain values handed from one stage to the next (docs/design.md §1): a source yields a
//! [`ControlPlane`], `render` turns it into an [`AssetDir`], and `assets` puts that on disk.
//! Keeping them as plain data is what lets every stage be tested alone.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// Where a [`ControlPlane`] was read from. Only this part of `kubeboot.json` may differ
/// between the three sources for the same cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    Apiserver,
    Etcd,
    Snapshot,
    /// A brand-new cluster from `kubeboot render`; nothing was read.
    Rendered,
}

/// Provenance of a recovery, recorded under `source` in `kubeboot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    pub kind: SourceKind,
    /// The endpoint(s) or file the objects came from.
    pub location: String,
    /// The etcd revision (or list resourceVersion) the objects were read at.
    pub revision: Option<i64>,
    /// For snapshots: how the sha256 trailer was checked ("verified", or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// For snapshots: the file's sha256 (trailer included; absent when the trailer was
    /// not checked) and size, so the asset dir says exactly which file it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// RFC 3339 time of the read.
    pub read_at: String,
}

/// The control-plane objects recovered from one source, typed with k8s-openapi.
///
/// Lists are sorted by namespace and name so that rendering never depends on the
/// order a source happened to return them in.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlPlane {
    pub source: SourceInfo,
    pub daemonsets: Vec<DaemonSet>,
    pub deployments: Vec<Deployment>,
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    /// The kubeconfig the operator gave (`--kubeconfig`), copied to `auth/kubeconfig`.
    pub kubeconfig: Option<Vec<u8>>,
    /// Things the operator must know about the read itself, e.g. fields newer than the
    /// codec's protos. They end up in `kubeboot.json`; a silent loss is a wrong recovery.
    pub warnings: Vec<String>,
    /// Protobuf fields no descriptor set knows, `KEY: MESSAGE field N`, one per field and
    /// object: each is also a warning, and `recover --strict` refuses them.
    pub unknown_fields: Vec<String>,
}

impl ControlPlane {
    /// Sorts every list by namespace and name, so rendering never depends on the order
    /// a source returned objects in.
    pub fn sort(&mut self) {
        fn key(m: &ObjectMeta) -> (Option<&String>, Option<&String>) {
            (m.namespace.as_ref(), m.name.as_ref())
        }
        self.daemonsets
            .sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
        self.deployments
            .sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
        self.secrets
            .sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
        self.config_maps
            .sort_by(|a, b| key(&a.metadata).cmp(&key(&b.metadata)));
    }
}

/// File mode for anything that may hold a secret: keys, tokens, kubeconfigs, Secret data.
pub const MODE_SECRET: u32 = 0o600;
/// File mode for files with no secret content (manifests, `kubeboot.json`).
pub const MODE_PUBLIC: u32 = 0o644;
/// Mode of every dir kubeboot creates that may hold secrets.
pub const MODE_SECRET_DIR: u32 = 0o700;

/// One file of an asset dir, in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// An asset dir in memory: relative path (always `/`-separated, never absolute, never
/// containing `..`) to contents and mode. A `BTreeMap` so iteration, and thus output,
/// is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetDir {
    pub files: BTreeMap<String, Asset>,
}

impl AssetDir {
    pub fn insert(&mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>, mode: u32) {
        self.files.insert(
            path.into(),
            Asset {
                bytes: bytes.into(),
                mode,
            },
        );
    }

    pub fn get(&self, path: &str) -> Option<&Asset> {
        self.files.get(path)
    }
}
