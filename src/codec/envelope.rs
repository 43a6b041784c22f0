//! The framing around an object in etcd: which encoding a value uses, and the protobuf envelope.
//!
//! kube-apiserver's protobuf serializer writes the 4-byte magic `k8s\0` and then a
//! `runtime.Unknown` message: TypeMeta (apiVersion, kind), `raw` (the object's own protobuf),
//! `contentEncoding` and `contentType` (both empty in storage). Values encrypted at rest start
//! with `k8s:enc:<provider>:<version>:<key name>:` instead; custom resources are plain JSON.

use prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use super::descriptors::{self, names};

/// The protobuf serializer's magic prefix.
pub(crate) const MAGIC: &[u8] = b"k8s\0";
/// The prefix of every value the api-server encrypted at rest.
const ENCRYPTED: &[u8] = b"k8s:enc:";

/// What kind of value this is, judged from its first bytes only.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detected<'a> {
    /// `k8s\0` + the bytes after the magic.
    Protobuf(&'a [u8]),
    Json(&'a [u8]),
    Encrypted {
        provider: String,
        key_name: Option<String>,
    },
    Empty,
    Unrecognized,
}

pub(crate) fn detect(value: &[u8]) -> Detected<'_> {
    if value.is_empty() {
        return Detected::Empty;
    }
    if let Some(rest) = value.strip_prefix(MAGIC) {
        return Detected::Protobuf(rest);
    }
    if let Some(rest) = value.strip_prefix(ENCRYPTED) {
        // <provider>:<version>:<key name>:<ciphertext>
        let mut parts = rest.splitn(4, |b| *b == b':');
        let provider = parts
            .next()
            .and_then(label)
            .unwrap_or_else(|| "?".to_string());
        let _version = parts.next();
        let key_name = parts.next().and_then(label);
        return Detected::Encrypted { provider, key_name };
    }
    match value.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Detected::Json(value),
        _ => Detected::Unrecognized,
    }
}

/// A printable name from an encryption prefix; ciphertext or junk gives `None`.
fn label(bytes: &[u8]) -> Option<String> {
    let printable = bytes.iter().all(|b| b.is_ascii_graphic());
    (printable && !bytes.is_empty() && bytes.len() <= 253)
        .then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Why bytes could not be decoded: ran out of input, or are not what they should be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    Incomplete(String),
    Invalid(String),
}

/// Classifies a decode failure of `bytes`: if the top level of the wire format runs out in the
/// middle of a field the value is incomplete (a short read), otherwise invalid. prost's own
/// errors do not tell the two apart (a cut varint reads as "invalid varint").
pub(crate) fn problem(what: &str, bytes: &[u8], err: &prost::DecodeError) -> Problem {
    if ends_mid_field(bytes) {
        Problem::Incomplete(format!("{what} is truncated ({err})"))
    } else {
        Problem::Invalid(format!("{what} is not valid protobuf ({err})"))
    }
}

/// Walks the top-level fields of a protobuf message; `true` if the input ends inside one.
fn ends_mid_field(mut bytes: &[u8]) -> bool {
    /// `None`: ran out of input; `Some(None)`: malformed varint.
    fn varint(bytes: &mut &[u8]) -> Option<Option<u64>> {
        let mut value = 0u64;
        for shift in 0..10 {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << (shift * 7);
            if b & 0x80 == 0 {
                return Some(Some(value));
            }
        }
        Some(None)
    }
    while !bytes.is_empty() {
        let key = match varint(&mut bytes) {
            None => return true,
            Some(None) => return false,
            Some(Some(k)) => k,
        };
        let skip = match key & 7 {
            0 => match varint(&mut bytes) {
                None => return true,
                Some(None) => return false,
                Some(Some(_)) => 0,
            },
            1 => 8,
            5 => 4,
            2 => match varint(&mut bytes) {
                None => return true,
                Some(None) => return false,
                Some(Some(len)) => usize::try_from(len).unwrap_or(usize::MAX),
            },
            _ => return false,
        };
        match bytes.get(skip..) {
            Some(rest) => bytes = rest,
            None => return true,
        }
    }
    false
}

/// The contents of a `runtime.Unknown`.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub api_version: String,
    pub kind: String,
    pub raw: Vec<u8>,
    pub content_encoding: String,
    /// Fields of the envelope itself that these protos do not know.
    pub unknown_fields: Vec<String>,
}

pub(crate) fn open(bytes: &[u8]) -> Result<Envelope, Problem> {
    let desc = descriptors::message(names::UNKNOWN)
        .ok_or_else(|| Problem::Invalid("no runtime.Unknown descriptor".to_string()))?;
    let msg =
        DynamicMessage::decode(desc, bytes).map_err(|e| problem("runtime.Unknown", bytes, &e))?;
    let mut unknown_fields: Vec<String> = msg
        .unknown_fields()
        .map(|f| format!("{} field {}", names::UNKNOWN, f.number()))
        .collect();
    let string = |m: &DynamicMessage, n: u32| match m.get_field_by_number(n).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let (api_version, kind) = match msg.get_field_by_number(1).as_deref() {
        Some(Value::Message(meta)) => {
            unknown_fields.extend(
                meta.unknown_fields()
                    .map(|f| format!("{} field {}", meta.descriptor().full_name(), f.number())),
            );
            (string(meta, 1), string(meta, 2))
        }
        _ => (String::new(), String::new()),
    };
    let raw = match msg.get_field_by_number(2).as_deref() {
        Some(Value::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    };
    Ok(Envelope {
        api_version,
        kind,
        raw,
        content_encoding: string(&msg, 3),
        unknown_fields,
    })
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}`, with every
/// field written as Go's generated marshaller writes it (strings even when empty).
pub(crate) fn seal(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    put_bytes(1, api_version.as_bytes(), &mut type_meta);
    put_bytes(2, kind.as_bytes(), &mut type_meta);
    let mut out = Vec::with_capacity(MAGIC.len() + raw.len() + type_meta.len() + 16);
    out.extend_from_slice(MAGIC);
    put_bytes(1, &type_meta, &mut out);
    put_bytes(2, raw, &mut out);
    put_bytes(3, b"", &mut out);
    put_bytes(4, b"", &mut out);
    out
}

/// One length-delimited field.
pub(crate) fn put_bytes(number: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Checks `seal` against prost-reflect's reading of it (used by tests).
#[cfg(test)]
fn reopen(value: &[u8]) -> Envelope {
    let Detected::Protobuf(rest) = detect(value) else {
        panic!("not protobuf")
    };
    open(rest).unwrap_or_else(|e| panic!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_encoding() {
        assert_eq!(detect(b""), Detected::Empty);
        assert_eq!(detect(b"k8s\0\x0a"), Detected::Protobuf(b"\x0a"));
        assert_eq!(detect(b" \n{\"a\":1}"), Detected::Json(b" \n{\"a\":1}"));
        assert_eq!(detect(b"\x00\x01"), Detected::Unrecognized);
        assert_eq!(
            detect(b"k8s:enc:aescbc:v1:key1:\x8f\x00\x01"),
            Detected::Encrypted {
                provider: "aescbc".to_string(),
                key_name: Some("key1".to_string())
            }
        );
        assert_eq!(
            detect(b"k8s:enc:kms"),
            Detected::Encrypted {
                provider: "kms".to_string(),
                key_name: None
            }
        );
    }

    #[test]
    fn seal_then_open() {
        let value = seal("apps/v1", "Deployment", b"\x0a\x00");
        assert!(value.ends_with(b"\x1a\x00\x22\x00"));
        let envelope = reopen(&value);
        assert_eq!(envelope.api_version, "apps/v1");
        assert_eq!(envelope.kind, "Deployment");
        assert_eq!(envelope.raw, b"\x0a\x00");
        assert!(envelope.unknown_fields.is_empty());
    }

    #[test]
    fn truncation_is_incomplete_and_junk_is_invalid() {
        let value = seal("v1", "Pod", b"");
        let cut = &value[MAGIC.len()..value.len() - 3];
        assert!(matches!(open(cut), Err(Problem::Incomplete(_))));
        assert!(matches!(open(b"\x0f\x0f"), Err(Problem::Invalid(_))));
        // Cut inside a varint, inside a length, and inside a length-delimited body.
        for cut in [&b"\x08"[..], b"\x08\x96", b"\x0a", b"\x0a\x05ab"] {
            assert!(ends_mid_field(cut), "{cut:?}");
        }
        assert!(!ends_mid_field(b"\x08\x96\x01\x0a\x01a"));
    }

    #[test]
    fn encode_len_matches_prost() {
        // The envelope's length prefix for a 300-byte raw needs a two-byte varint.
        let raw = vec![0u8; 300];
        let value = seal("v1", "Pod", &raw);
        assert_eq!(reopen(&value).raw.len(), 300);
        assert_eq!(prost::encoding::encoded_len_varint(300), 2);
    }
}
