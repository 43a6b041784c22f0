//! `kubeboot.json`: what was recovered, from where, and what the operator must know.
//!
//! Deterministic by construction (fixed field order, sorted lists), so that the three
//! sources give byte-identical files for the same cluster state except under `source`.

use serde::Serialize;

use super::RenderError;
use super::select::Parent;
use crate::model::{ControlPlane, SourceInfo};

/// Path of the report in the asset dir.
pub const PATH: &str = "kubeboot.json";

/// What `kubeconfig` says when no kubeconfig was supplied.
pub const KUBECONFIG_MISSING: &str = "missing: the operator must supply auth/kubeconfig (a kubeconfig for the recovered api-server; the bootstrap controller-manager and scheduler, and start, use it)";

#[derive(Serialize)]
struct Report<'a> {
    kubeboot_version: &'static str,
    source: &'a SourceInfo,
    components: Vec<Component<'a>>,
    objects: Counts,
    /// Files in the asset dir, this one included: the count `recover` prints.
    files: usize,
    kubeconfig: &'static str,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct Component<'a> {
    name: &'a str,
    kind: &'static str,
    namespace: &'a str,
    component: &'static str,
    bootstrap_manifest: String,
}

#[derive(Serialize)]
struct Counts {
    daemonsets: usize,
    deployments: usize,
    secrets: usize,
    config_maps: usize,
}

/// The pretty JSON of the report, with a final newline.
pub fn build(
    cp: &ControlPlane,
    parents: &[Parent<'_>],
    files: usize,
    warnings: &[String],
) -> Result<Vec<u8>, RenderError> {
    let mut warnings = warnings.to_vec();
    warnings.sort();
    warnings.dedup();
    let report = Report {
        kubeboot_version: env!("CARGO_PKG_VERSION"),
        source: &cp.source,
        components: parents
            .iter()
            .map(|p| Component {
                name: &p.name,
                kind: p.kind.as_str(),
                namespace: &p.namespace,
                component: p.component,
                bootstrap_manifest: p.manifest_path(),
            })
            .collect(),
        objects: Counts {
            daemonsets: cp.daemonsets.len(),
            deployments: cp.deployments.len(),
            secrets: cp.secrets.len(),
            config_maps: cp.config_maps.len(),
        },
        files,
        kubeconfig: if cp.kubeconfig.is_some() {
            "supplied"
        } else {
            KUBECONFIG_MISSING
        },
        warnings,
    };
    let mut bytes = serde_json::to_vec_pretty(&report).map_err(RenderError::Report)?;
    bytes.push(b'\n');
    Ok(bytes)
}
