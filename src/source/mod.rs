//! Recovery sources. Each one reads the same objects (bootkube's set: kube-system
//! ConfigMaps, Secrets, DaemonSets and Deployments) and yields the same
//! [`ControlPlane`], so `render` never knows where the objects came from and the three
//! sources can be proven to render the same bytes.
//!
//! The etcd and snapshot sources share [`assemble`]: they only differ in how they fetch
//! `(key, value, mod_revision)` triples under the four prefixes.

pub mod apiserver;
pub mod etcd;
pub mod snapshot;

use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError};
use crate::encryption::{EncryptionConfig, EncryptionError};
use crate::model::{ControlPlane, SourceInfo};
use crate::registry;
use crate::snapshot::SnapshotError;

/// The namespace bootkube's self-hosted control plane lives in.
pub const NAMESPACE: &str = "kube-system";

/// The resource segments a recovery reads, in the order they are fetched.
pub const RESOURCES: [&str; 4] = ["configmaps", "secrets", "daemonsets", "deployments"];

/// One stored object as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source itself could not be read: nothing to recover from.
    #[error("etcd {endpoint}: {reason}")]
    Etcd { endpoint: String, reason: String },
    #[error("api-server {endpoint}: {reason}")]
    Apiserver { endpoint: String, reason: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The source was read, but an object in it is unusable.
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Encryption(#[from] EncryptionError),
    #[error("{key}: {reason}")]
    Object { key: String, reason: String },
    /// A file the operator pointed at (kubeconfig, CA, client cert) is unusable: a
    /// configuration error (exit code 2), not a dead source.
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
}

impl SourceError {
    /// True when the source could not be read at all (exit code 3), as opposed to a
    /// source that was read but holds something unusable (exit code 1).
    pub fn is_unreadable(&self) -> bool {
        matches!(
            self,
            SourceError::Etcd { .. } | SourceError::Apiserver { .. } | SourceError::Snapshot(_)
        )
    }
}

/// The four key prefixes a recovery reads under `--etcd-prefix`.
pub fn prefixes(etcd_prefix: &str) -> Vec<String> {
    RESOURCES
        .iter()
        .map(|res| registry::namespace_prefix(etcd_prefix, res, NAMESPACE))
        .collect()
}

/// Decodes stored objects into a [`ControlPlane`].
///
/// Objects come out as the api-server would serve them: `resourceVersion` is the
/// object's etcd mod revision, which kube-apiserver never stores in the value itself.
/// Fields newer than the codec's protos are kept as warnings, not dropped silently.
/// Values encrypted at rest are decrypted with `encryption`, the api-server's own
/// `--encryption-provider-config`; without it they are an error naming key and provider.
pub fn assemble(
    etcd_prefix: &str,
    stored: &[Stored],
    source: SourceInfo,
    kubeconfig: Option<Vec<u8>>,
    encryption: Option<&EncryptionConfig>,
) -> Result<ControlPlane, SourceError> {
    let mut cp = ControlPlane {
        source,
        daemonsets: Vec::new(),
        deployments: Vec::new(),
        secrets: Vec::new(),
        config_maps: Vec::new(),
        kubeconfig,
        warnings: Vec::new(),
        unknown_fields: Vec::new(),
    };
    for item in stored {
        let decrypted;
        let value = match encryption {
            Some(config) => {
                decrypted = config.decrypt(&item.key, &item.value)?;
                &decrypted
            }
            None => &item.value,
        };
        let decoded = codec::decode(&item.key, value)?;
        note_descriptors(&mut cp, &item.key, &decoded);
        let mut object = decoded.object;
        if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.insert(
                "resourceVersion".into(),
                serde_json::Value::String(item.mod_revision.to_string()),
            );
        }
        match registry::resource_of_key(etcd_prefix, &item.key) {
            Some("configmaps") => cp.config_maps.push(typed(&item.key, object)?),
            Some("secrets") => cp.secrets.push(typed(&item.key, object)?),
            Some("daemonsets") => cp.daemonsets.push(typed(&item.key, object)?),
            Some("deployments") => cp.deployments.push(typed(&item.key, object)?),
            _ => {}
        }
    }
    cp.sort();
    Ok(cp)
}

/// Records what the descriptors could not read (a field's value is then missing from the
/// object, so it is named, never dropped in silence) and a decode that needed the pre-release
/// descriptors.
fn note_descriptors(cp: &mut ControlPlane, key: &str, decoded: &codec::Decoded) {
    for field in &decoded.unknown_fields {
        cp.unknown_fields.push(format!("{key}: {field}"));
        cp.warnings.push(format!(
            "{key}: protobuf {field} is unknown to the descriptors kubeboot carries ({}; {}); \
             its value is not in the recovered object",
            codec::Descriptors::Release.source(),
            codec::Descriptors::Head.source()
        ));
    }
    if decoded.descriptors == codec::Descriptors::Head {
        cp.warnings.push(format!(
            "{key}: written by a Kubernetes newer than {}: decoded with the pre-release \
             descriptors of {}",
            codec::Descriptors::Release.source(),
            codec::Descriptors::Head.source()
        ));
    }
}

fn typed<T: DeserializeOwned>(key: &str, object: serde_json::Value) -> Result<T, SourceError> {
    serde_json::from_value(object).map_err(|e| SourceError::Object {
        key: key.to_string(),
        reason: format!("not a valid object of its kind: {e}"),
    })
}

/// An error and its sources on one line, so TLS and auth causes are never hidden
/// behind a generic "transport error" or "deadline exceeded". gRPC statuses are shown
/// as code and message: tonic's own `Display` appends its source in Debug form
/// (`tonic::transport::Error(Transport, ConnectError(…))`), which the chain below
/// prints readably instead; etcd-client keeps the status without exposing it as a source.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur = Some(e);
    if let Some(etcd_client::Error::GRpcStatus(status)) = e.downcast_ref::<etcd_client::Error>() {
        cur = Some(status);
    }
    while let Some(s) = cur {
        let text = match s.downcast_ref::<tonic::Status>() {
            Some(st) => format!("{}: {}", st.code().description(), st.message()),
            None => s.to_string(),
        };
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.replace('\n', " ")
}

/// The current time in RFC 3339, for `SourceInfo::read_at`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_namespace_scoped_with_trailing_slash() {
        assert_eq!(
            prefixes("/registry"),
            [
                "/registry/configmaps/kube-system/",
                "/registry/secrets/kube-system/",
                "/registry/daemonsets/kube-system/",
                "/registry/deployments/kube-system/",
            ]
        );
    }
}
