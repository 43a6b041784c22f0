//! Kubernetes storage encoding: etcd value bytes ⇄ the object's JSON exactly as the api-server
//! serves it.
//!
//! Recovery reads objects straight out of etcd or a snapshot, with no api-server to decode them,
//! and a recovered static pod that silently lost or gained a field is a wrong recovery. So this
//! module reproduces what kube-apiserver does: `k8s\0` + `runtime.Unknown` protobuf for built-in
//! kinds (decoded generically from the `.proto` descriptors of the newest Kubernetes release, and
//! of kubernetes/api's HEAD for a value the release cannot wholly read; see `build.rs`), plain
//! JSON for custom resources, and a clear error for values encrypted at rest. Go-JSON facts the
//! protos lack come from data tables (`fields.rs`). Protobuf fields newer than both are never
//! dropped silently: they are listed in [`Decoded::unknown_fields`].
//!
//! The rules followed, and what was measured: `docs/codec.md`.

mod descriptors;
mod envelope;
mod fields;
mod from_json;
mod layout;
mod names;
mod to_json;
mod wellknown;

use prost_reflect::DynamicMessage;
use serde_json::{Map, Value as Json};

pub use descriptors::{Descriptors, build_beside};
use envelope::{Detected, Problem};

/// How a value was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `k8s\0` + `runtime.Unknown` (built-in kinds).
    Protobuf,
    /// Plain JSON (custom resources, or an api-server storing JSON).
    Json,
}

/// A decoded etcd value.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The object as the api-server would serve it, with `kind` and `apiVersion`.
    pub object: Json,
    pub format: Format,
    /// Protobuf fields no compiled descriptors know, e.g. `k8s.io.api.core.v1.PodSpec field 99`
    /// (written by a newer cluster, or an alpha field since removed). Their values are not in
    /// `object`.
    pub unknown_fields: Vec<String>,
    /// Which descriptors decoded a protobuf value: [`Descriptors::Head`] only when the release's
    /// left fields unknown that HEAD's know.
    pub descriptors: Descriptors,
}

/// Why a value could not be decoded or an object encoded. Each message is one line that starts
/// with the etcd key (or, for [`encode`], the object's identity).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value starts with `k8s:enc:`: the api-server encrypted it at rest.
    #[error(
        "{key}: encrypted at rest with provider {provider}{}; pass --encryption-provider-config",
        key_name.as_ref().map(|k| format!(" (key {k:?})")).unwrap_or_default()
    )]
    Encrypted {
        key: String,
        provider: String,
        key_name: Option<String>,
    },
    /// The TypeMeta names no message in the compiled protos.
    #[error(
        "{key}: unknown kind: apiVersion {api_version:?}, kind {kind:?} has no protobuf message in {} or {}", Descriptors::Release.source(), Descriptors::Head.source()
    )]
    UnknownKind {
        key: String,
        api_version: String,
        kind: String,
    },
    /// The value ends early (e.g. a truncated read).
    #[error("{key}: incomplete value: {what}")]
    Incomplete { key: String, what: String },
    /// The value is malformed.
    #[error("{key}: invalid value: {what}")]
    Invalid { key: String, what: String },
    /// The object cannot be encoded.
    #[error("{key}: cannot encode: {what}")]
    Encode { key: String, what: String },
}

/// Decodes an etcd value. `key` is the etcd key, used only in error messages.
pub fn decode(key: &str, value: &[u8]) -> Result<Decoded, CodecError> {
    match envelope::detect(value) {
        Detected::Protobuf(rest) => {
            let envelope = envelope::open(rest).map_err(|p| problem(key, p))?;
            if !envelope.content_encoding.is_empty() {
                return Err(invalid(
                    key,
                    format!(
                        "unsupported contentEncoding {:?}",
                        envelope.content_encoding
                    ),
                ));
            }
            if envelope.api_version.is_empty() || envelope.kind.is_empty() {
                return Err(invalid(
                    key,
                    "runtime.Unknown has no apiVersion or kind".into(),
                ));
            }
            let mut decoded =
                decode_bare(key, &envelope.api_version, &envelope.kind, &envelope.raw)?;
            let mut unknown = envelope.unknown_fields;
            unknown.append(&mut decoded.unknown_fields);
            dedup(&mut unknown);
            decoded.unknown_fields = unknown;
            Ok(decoded)
        }
        Detected::Json(bytes) => {
            let object: Json = serde_json::from_slice(bytes).map_err(|e| {
                let what = format!("JSON: {e}");
                if e.is_eof() {
                    CodecError::Incomplete {
                        key: key.into(),
                        what,
                    }
                } else {
                    invalid(key, what)
                }
            })?;
            if !object.is_object() {
                return Err(invalid(key, "JSON value is not an object".into()));
            }
            Ok(Decoded {
                object,
                format: Format::Json,
                unknown_fields: Vec::new(),
                descriptors: Descriptors::Release,
            })
        }
        Detected::Encrypted { provider, key_name } => Err(CodecError::Encrypted {
            key: key.into(),
            provider,
            key_name,
        }),
        Detected::Empty => Err(CodecError::Incomplete {
            key: key.into(),
            what: "empty value".into(),
        }),
        Detected::Unrecognized => Err(invalid(
            key,
            "neither k8s\\0 protobuf, JSON, nor k8s:enc: encrypted".into(),
        )),
    }
}

/// Decodes the output of `etcdctl get KEY --print-value-only`, which appends one `\n` to the
/// value; `name` (a file name or key) is used in errors. A protobuf value ends in a complete
/// field, so exactly one trailing newline is stripped from it; JSON allows the whitespace.
pub fn decode_printed(name: &str, bytes: &[u8]) -> Result<Decoded, CodecError> {
    let exact = match envelope::detect(bytes) {
        Detected::Protobuf(_) => bytes.strip_suffix(b"\n").unwrap_or(bytes),
        _ => bytes,
    };
    decode(name, exact)
}

/// Decodes a bare protobuf message (the `raw` of a `runtime.Unknown`, no `k8s\0`) of the given
/// type. `key` is used only in errors. The release's descriptors come first; HEAD's are tried only
/// when the release leaves fields unknown, and kept only when they know more of them (an alpha
/// field the release has and HEAD dropped stays decoded by the release).
pub fn decode_bare(
    key: &str,
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<Decoded, CodecError> {
    let head = || decode_with(Descriptors::Head, key, api_version, kind, raw);
    match decode_with(Descriptors::Release, key, api_version, kind, raw) {
        Ok(release) if release.unknown_fields.is_empty() => Ok(release),
        Ok(release) => match head() {
            Ok(head) if head.unknown_fields.len() < release.unknown_fields.len() => Ok(head),
            _ => Ok(release),
        },
        // A kind newer than the release (a pre-release cluster's new API).
        Err(CodecError::UnknownKind { .. }) => head(),
        Err(e) => Err(e),
    }
}

fn decode_with(
    set: Descriptors,
    key: &str,
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<Decoded, CodecError> {
    let desc =
        names::message_for_in(set, api_version, kind).ok_or_else(|| CodecError::UnknownKind {
            key: key.into(),
            api_version: api_version.into(),
            kind: kind.into(),
        })?;
    let msg = DynamicMessage::decode(desc, raw)
        .map_err(|e| problem(key, envelope::problem(&format!("{kind} protobuf"), raw, &e)))?;
    let mut unknown_fields = Vec::new();
    let mut object = Map::new();
    object.insert("kind".into(), Json::String(kind.into()));
    object.insert("apiVersion".into(), Json::String(api_version.into()));
    to_json::fill_object(&msg, &mut object, &mut unknown_fields)
        .map_err(|what| invalid(key, format!("{kind}: {what}")))?;
    dedup(&mut unknown_fields);
    Ok(Decoded {
        object: Json::Object(object),
        format: Format::Protobuf,
        unknown_fields,
        descriptors: set,
    })
}

/// Encodes an object (a JSON object with `apiVersion` and `kind`) exactly as kube-apiserver
/// stores it in etcd: `k8s\0` + `runtime.Unknown` protobuf for built-in kinds; for custom
/// resources, JSON as Go's encoding/json writes an unstructured object (sorted keys, HTML
/// characters escaped, one trailing newline).
pub fn encode(object: &Json) -> Result<Vec<u8>, CodecError> {
    let (api_version, kind) = type_meta(object)?;
    let (group, _) = names::split_api_version(api_version);
    if names::message_for(api_version, kind).is_none() && !names::is_built_in_group(group) {
        return Ok(go_json(object));
    }
    let raw = encode_bare(object)?;
    Ok(envelope::seal(api_version, kind, &raw))
}

/// Encodes a built-in object as its bare protobuf message (no envelope): the inverse of
/// [`decode_bare`].
pub fn encode_bare(object: &Json) -> Result<Vec<u8>, CodecError> {
    let (api_version, kind) = type_meta(object)?;
    let id = identity(object);
    let desc = names::message_for(api_version, kind).ok_or_else(|| CodecError::UnknownKind {
        key: id.clone(),
        api_version: api_version.into(),
        kind: kind.into(),
    })?;
    let Json::Object(map) = object else {
        return Err(CodecError::Encode {
            key: id,
            what: "not a JSON object".into(),
        });
    };
    from_json::encode_object(&desc, map, &["kind", "apiVersion"], "").map_err(|what| {
        CodecError::Encode {
            key: id,
            what: what.trim_start_matches('.').into(),
        }
    })
}

fn type_meta(object: &Json) -> Result<(&str, &str), CodecError> {
    let field = |name: &str| {
        object
            .get(name)
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
    };
    match (field("apiVersion"), field("kind")) {
        (Some(api_version), Some(kind)) => Ok((api_version, kind)),
        _ => Err(CodecError::Encode {
            key: identity(object),
            what: "the object needs a string apiVersion and kind".into(),
        }),
    }
}

/// `apiVersion kind namespace/name` of an object, for errors from `encode`.
fn identity(object: &Json) -> String {
    let get = |path: &[&str]| {
        let mut v = object;
        for p in path {
            v = v.get(p)?;
        }
        v.as_str()
    };
    let name = match (get(&["metadata", "namespace"]), get(&["metadata", "name"])) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.to_string(),
        _ => "(unnamed)".to_string(),
    };
    format!(
        "{} {} {name}",
        get(&["apiVersion"]).unwrap_or("?"),
        get(&["kind"]).unwrap_or("?")
    )
}

/// JSON as Go's `json.Encoder.Encode` writes a `map[string]interface{}`.
fn go_json(object: &Json) -> Vec<u8> {
    let text = sorted(object).to_string();
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out.into_bytes()
}

fn sorted(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Keeps the first of each repeated entry, in order: a list of 100 containers with the same new
/// field is one finding.
fn dedup(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

fn invalid(key: &str, what: String) -> CodecError {
    CodecError::Invalid {
        key: key.into(),
        what,
    }
}

fn problem(key: &str, problem: Problem) -> CodecError {
    match problem {
        Problem::Incomplete(what) => CodecError::Incomplete {
            key: key.into(),
            what,
        },
        Problem::Invalid(what) => invalid(key, what),
    }
}
