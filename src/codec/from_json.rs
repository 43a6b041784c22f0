//! Kubernetes JSON → protobuf bytes, as Go's generated marshaller writes them.
//!
//! Written directly from descriptors (no intermediate `DynamicMessage`) so the output is
//! deterministic and in Go's order: fields by ascending number, map entries sorted by key,
//! non-pointer scalars and structs written even when zero or absent from the JSON (Go's
//! marshaller does not know they were absent). Unknown JSON keys are an error rather than being
//! dropped: writing an object back must not lose data silently.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::encoding::{WireType, encode_key, encode_varint};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json};

use super::descriptors::names;
use super::envelope::put_bytes;
use super::layout::{Slot, layout};
use super::to_json::is_apiextensions;
use super::wellknown;

/// Encodes `object` as message `desc`; keys in `ignore` (the top level's `kind`/`apiVersion`)
/// are allowed without a field. `path` names the object in errors.
pub(crate) fn encode_object(
    desc: &MessageDescriptor,
    object: &Map<String, Json>,
    ignore: &[&str],
    path: &str,
) -> Result<Vec<u8>, String> {
    let mut consumed: HashSet<&str> = ignore.iter().copied().collect();
    let mut out = Vec::new();
    encode_fields(desc, object, &mut consumed, path, &mut out)?;
    if let Some(extra) = object.keys().find(|k| !consumed.contains(k.as_str())) {
        return Err(format!(
            "unknown field {path}.{extra} (no such field in {})",
            desc.full_name()
        ));
    }
    Ok(out)
}

/// Writes the fields of `desc` found in `object`; an inline struct reads the same object.
fn encode_fields<'a>(
    desc: &MessageDescriptor,
    object: &'a Map<String, Json>,
    consumed: &mut HashSet<&'a str>,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut slots: Vec<Slot> = layout(desc);
    slots.sort_by_key(|s| s.field.number());
    for slot in slots {
        let (field, rule) = (&slot.field, &slot.rule);
        if rule.skip {
            continue;
        }
        if rule.inline {
            let Kind::Message(inner) = field.kind() else {
                return Err(format!(
                    "{path}: inline field {} is no message",
                    field.name()
                ));
            };
            let mut bytes = Vec::new();
            encode_fields(&inner, object, consumed, path, &mut bytes)?;
            put_bytes(field.number(), &bytes, out);
            continue;
        }
        let entry = object.get_key_value(rule.json_name.as_str());
        if let Some((key, _)) = entry {
            consumed.insert(key.as_str());
        }
        let child = format!("{path}.{}", rule.json_name);
        match entry.map(|(_, v)| v) {
            None | Some(Json::Null) => {
                if rule.always_written && !field.is_list() && !field.is_map() {
                    single(field, &field.kind(), &Json::Null, &child, out)?;
                }
            }
            Some(value) => field_value(field, value, &child, out)?,
        }
    }
    Ok(())
}

fn field_value(
    field: &FieldDescriptor,
    value: &Json,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if field.is_map() {
        let Json::Object(entries) = value else {
            return Err(format!("{path}: expected an object"));
        };
        let Kind::Message(entry) = field.kind() else {
            return Err(format!("{path}: map without entry message"));
        };
        let (key_field, value_field) = (entry.map_entry_key_field(), entry.map_entry_value_field());
        let mut sorted: Vec<(&String, &Json)> = entries.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, v) in sorted {
            let child = format!("{path}[{key}]");
            let mut bytes = Vec::new();
            single(
                &key_field,
                &key_field.kind(),
                &Json::String(key.clone()),
                &child,
                &mut bytes,
            )?;
            if !(v.is_null() && value_field.kind() == Kind::Bytes) {
                single(&value_field, &value_field.kind(), v, &child, &mut bytes)?;
            }
            put_bytes(field.number(), &bytes, out);
        }
        return Ok(());
    }
    if field.is_list() {
        let Json::Array(items) = value else {
            return Err(format!("{path}: expected an array"));
        };
        let kind = field.kind();
        if field.is_packed() {
            let mut bytes = Vec::new();
            for (i, item) in items.iter().enumerate() {
                scalar(&kind, item, &format!("{path}[{i}]"), &mut bytes)?;
            }
            put_bytes(field.number(), &bytes, out);
        } else {
            for (i, item) in items.iter().enumerate() {
                single(field, &kind, item, &format!("{path}[{i}]"), out)?;
            }
        }
        return Ok(());
    }
    single(field, &field.kind(), value, path, out)
}

/// One value with its key. `Null` means the Go zero value.
fn single(
    field: &FieldDescriptor,
    kind: &Kind,
    value: &Json,
    path: &str,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let number = field.number();
    match kind {
        Kind::Message(desc) => {
            let bytes = message_value(desc, value, path)?;
            put_bytes(number, &bytes, out);
        }
        Kind::String | Kind::Bytes => {
            encode_key(number, WireType::LengthDelimited, out);
            scalar(kind, value, path, out)?;
        }
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => {
            encode_key(number, WireType::SixtyFourBit, out);
            scalar(kind, value, path, out)?;
        }
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => {
            encode_key(number, WireType::ThirtyTwoBit, out);
            scalar(kind, value, path, out)?;
        }
        _ => {
            encode_key(number, WireType::Varint, out);
            scalar(kind, value, path, out)?;
        }
    }
    Ok(())
}

/// A scalar without its key (strings and bytes with their length).
fn scalar(kind: &Kind, value: &Json, path: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let int = || -> Result<i64, String> {
        match value {
            Json::Null => Ok(0),
            Json::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| format!("{path}: {n} is not an integer")),
            other => Err(format!("{path}: expected an integer, got {}", short(other))),
        }
    };
    let float = || -> Result<f64, String> {
        match value {
            Json::Null => Ok(0.0),
            Json::Number(n) => n.as_f64().ok_or_else(|| format!("{path}: bad number")),
            other => Err(format!("{path}: expected a number, got {}", short(other))),
        }
    };
    let ranged = |lo: i64, hi: i64| -> Result<i64, String> {
        let n = int()?;
        if n < lo || n > hi {
            return Err(format!("{path}: {n} is out of range"));
        }
        Ok(n)
    };
    match kind {
        Kind::String => {
            let text = match value {
                Json::Null => "",
                Json::String(s) => s.as_str(),
                other => return Err(format!("{path}: expected a string, got {}", short(other))),
            };
            encode_varint(text.len() as u64, out);
            out.extend_from_slice(text.as_bytes());
        }
        Kind::Bytes => {
            let bytes = match value {
                Json::Null => Vec::new(),
                Json::String(s) => STANDARD
                    .decode(s)
                    .map_err(|e| format!("{path}: not base64 ({e})"))?,
                other => return Err(format!("{path}: expected base64, got {}", short(other))),
            };
            encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(&bytes);
        }
        Kind::Bool => {
            let b = match value {
                Json::Null => false,
                Json::Bool(b) => *b,
                other => return Err(format!("{path}: expected a boolean, got {}", short(other))),
            };
            encode_varint(u64::from(b), out);
        }
        Kind::Int32 | Kind::Enum(_) => {
            encode_varint(ranged(i32::MIN.into(), i32::MAX.into())? as u64, out);
        }
        Kind::Int64 => encode_varint(int()? as u64, out),
        Kind::Uint32 => encode_varint(ranged(0, u32::MAX.into())? as u64, out),
        Kind::Uint64 => encode_varint(ranged(0, i64::MAX)? as u64, out),
        Kind::Sint32 => {
            let n = ranged(i32::MIN.into(), i32::MAX.into())? as i32;
            encode_varint(u64::from(((n << 1) ^ (n >> 31)) as u32), out);
        }
        Kind::Sint64 => {
            let n = int()?;
            encode_varint(((n << 1) ^ (n >> 63)) as u64, out);
        }
        Kind::Fixed32 => out.extend_from_slice(&(ranged(0, u32::MAX.into())? as u32).to_le_bytes()),
        Kind::Sfixed32 => {
            out.extend_from_slice(&(ranged(i32::MIN.into(), i32::MAX.into())? as i32).to_le_bytes())
        }
        Kind::Fixed64 => out.extend_from_slice(&(ranged(0, i64::MAX)? as u64).to_le_bytes()),
        Kind::Sfixed64 => out.extend_from_slice(&int()?.to_le_bytes()),
        Kind::Double => out.extend_from_slice(&float()?.to_le_bytes()),
        Kind::Float => out.extend_from_slice(&(float()? as f32).to_le_bytes()),
        Kind::Message(_) => return Err(format!("{path}: message where a scalar belongs")),
    }
    Ok(())
}

fn short(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The body of a message-typed value, with the custom JSON forms of the apimachinery types.
fn message_value(desc: &MessageDescriptor, value: &Json, path: &str) -> Result<Vec<u8>, String> {
    let full = desc.full_name();
    let mut out = Vec::new();
    let varint = |number: u32, n: i64, out: &mut Vec<u8>| {
        encode_key(number, WireType::Varint, out);
        encode_varint(n as u64, out);
    };
    match (full, value) {
        (names::TIME | names::MICRO_TIME, Json::Null) => {}
        (names::TIME | names::MICRO_TIME, Json::String(text)) => {
            let (seconds, nanos) = wellknown::parse_time(text)
                .ok_or_else(|| format!("{path}: {text:?} is not an RFC 3339 time"))?;
            varint(1, seconds, &mut out);
            varint(2, i64::from(nanos), &mut out);
        }
        (names::DURATION, Json::Null) => varint(1, 0, &mut out),
        (names::DURATION, Json::String(text)) => {
            let nanos = wellknown::parse_duration(text)
                .ok_or_else(|| format!("{path}: {text:?} is not a Go duration"))?;
            varint(1, nanos, &mut out);
        }
        (names::QUANTITY, Json::Null) => put_bytes(1, b"0", &mut out),
        (names::QUANTITY, Json::String(text)) => put_bytes(1, text.as_bytes(), &mut out),
        (names::QUANTITY, Json::Number(n)) => put_bytes(1, n.to_string().as_bytes(), &mut out),
        (names::INT_OR_STRING, Json::Null | Json::Number(_)) => {
            let n = match value {
                Json::Number(n) => n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| format!("{path}: {n} is not an int32"))?,
                _ => 0,
            };
            varint(1, 0, &mut out);
            varint(2, i64::from(n), &mut out);
            put_bytes(3, b"", &mut out);
        }
        (names::INT_OR_STRING, Json::String(text)) => {
            varint(1, 1, &mut out);
            varint(2, 0, &mut out);
            put_bytes(3, text.as_bytes(), &mut out);
        }
        (names::RAW_EXTENSION | names::FIELDS_V1, Json::Null) => {}
        (names::RAW_EXTENSION | names::FIELDS_V1, v) => put_bytes(1, &compact(v)?, &mut out),
        _ if is_apiextensions(full, "JSON") => {
            if !value.is_null() {
                put_bytes(1, &compact(value)?, &mut out);
            }
        }
        _ if is_apiextensions(full, "JSONSchemaPropsOrBool") => match value {
            Json::Bool(b) => varint(1, i64::from(*b), &mut out),
            Json::Object(_) => {
                varint(1, 1, &mut out);
                let schema = schema_field(desc, 2)?;
                single(&schema, &schema.kind(), value, path, &mut out)?;
            }
            _ => varint(1, 0, &mut out),
        },
        _ if is_apiextensions(full, "JSONSchemaPropsOrArray")
            || is_apiextensions(full, "JSONSchemaPropsOrStringArray") =>
        {
            match value {
                Json::Object(_) => {
                    let schema = schema_field(desc, 1)?;
                    single(&schema, &schema.kind(), value, path, &mut out)?;
                }
                Json::Array(_) => field_value(&schema_field(desc, 2)?, value, path, &mut out)?,
                _ => {}
            }
        }
        _ if matches!(desc.name(), "Verbs" | "ExtraValue") && desc.fields().len() == 1 => {
            if !value.is_null() {
                field_value(&schema_field(desc, 1)?, value, path, &mut out)?;
            }
        }
        (_, Json::Object(object)) => out = encode_object(desc, object, &[], path)?,
        (_, Json::Null) => out = encode_object(desc, &Map::new(), &[], path)?,
        (_, other) => {
            return Err(format!(
                "{path}: expected an object for {full}, got {}",
                short(other)
            ));
        }
    }
    Ok(out)
}

fn schema_field(desc: &MessageDescriptor, number: u32) -> Result<FieldDescriptor, String> {
    desc.get_field(number)
        .ok_or_else(|| format!("{} has no field {number}", desc.full_name()))
}

/// Embedded JSON as stored: compact, keys in the order given.
fn compact(value: &Json) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| e.to_string())
}
