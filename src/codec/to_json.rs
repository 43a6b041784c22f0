//! Decoded protobuf (`DynamicMessage`) → the JSON the api-server would serve.
//!
//! prost-reflect's own JSON mapping is the proto3 canonical one, which is not what Kubernetes
//! prints: Go's encoding/json decides, through struct tags the `.proto` does not carry. This
//! walker applies those rules (see [`super::layout`]) plus the custom `MarshalJSON` forms of the
//! apimachinery types (Time, Quantity, IntOrString, RawExtension, …).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost_reflect::{DynamicMessage, Kind, MapKey, ReflectMessage, Value};
use serde_json::{Map, Number, Value as Json};

use super::descriptors::names;
use super::fields::{Absent, Zero};
use super::layout::layout;
use super::wellknown;

/// Walks one message; unknown protobuf fields are appended to `unknown` as
/// `k8s.io.api.core.v1.PodSpec field 99`. `Err` says what could not be printed.
pub(crate) fn message_json(
    msg: &DynamicMessage,
    unknown: &mut Vec<String>,
) -> Result<Json, String> {
    if let Some(json) = special_json(msg, unknown)? {
        return Ok(json);
    }
    let mut object = Map::new();
    fill_object(msg, &mut object, unknown)?;
    Ok(Json::Object(object))
}

/// Prints the fields of `msg` into `object`; an inline struct prints into its parent's object.
pub(crate) fn fill_object(
    msg: &DynamicMessage,
    object: &mut Map<String, Json>,
    unknown: &mut Vec<String>,
) -> Result<(), String> {
    let desc = msg.descriptor();
    for field in msg.unknown_fields() {
        unknown.push(format!("{} field {}", desc.full_name(), field.number()));
    }
    for slot in layout(&desc) {
        let rule = &slot.rule;
        if rule.skip {
            continue;
        }
        let value = msg.get_field(&slot.field);
        if rule.inline {
            if let Value::Message(inner) = value.as_ref() {
                fill_object(inner, object, unknown)?;
            }
            continue;
        }
        let json = if msg.has_field(&slot.field) {
            if rule.zero == Zero::Omit && is_zero(&value) {
                continue;
            }
            field_json(&value, unknown)?
        } else {
            match rule.absent {
                Absent::Omit => continue,
                Absent::Null => Json::Null,
                // get_field gave the default: 0, "", false, or an empty message.
                Absent::Zero => field_json(&value, unknown)?,
            }
        };
        object.insert(rule.json_name.clone(), json);
    }
    Ok(())
}

/// Go's zero value test for the field kinds that `omitempty`/`omitzero` look at.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::I32(n) => *n == 0,
        Value::I64(n) => *n == 0,
        Value::U32(n) => *n == 0,
        Value::U64(n) => *n == 0,
        Value::F32(n) => *n == 0.0,
        Value::F64(n) => *n == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::EnumNumber(n) => *n == 0,
        Value::Message(m) => m.fields().next().is_none(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
    }
}

/// A whole field: a list, a map (keys sorted, as encoding/json does) or a single value.
fn field_json(value: &Value, unknown: &mut Vec<String>) -> Result<Json, String> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|item| single_json(item, unknown))
            .collect::<Result<Vec<_>, _>>()
            .map(Json::Array),
        Value::Map(entries) => {
            let mut sorted: Vec<(String, &Value)> =
                entries.iter().map(|(k, v)| (map_key(k), v)).collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut object = Map::new();
            for (key, v) in sorted {
                object.insert(key, single_json(v, unknown)?);
            }
            Ok(Json::Object(object))
        }
        other => single_json(other, unknown),
    }
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn single_json(value: &Value, unknown: &mut Vec<String>) -> Result<Json, String> {
    Ok(match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::EnumNumber(n) => Json::from(*n),
        Value::F32(n) => float_json(f64::from(*n)),
        Value::F64(n) => float_json(*n),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(STANDARD.encode(b)),
        Value::Message(m) => message_json(m, unknown)?,
        Value::List(_) | Value::Map(_) => return Err("nested list or map".to_string()),
    })
}

/// Go prints integral floats without a fraction (`1`, not `1.0`).
fn float_json(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return Json::from(n as i64);
    }
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

fn string_field(msg: &DynamicMessage, number: u32) -> String {
    match msg.get_field_by_number(number).as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn int_field(msg: &DynamicMessage, number: u32) -> i64 {
    match msg.get_field_by_number(number).as_deref() {
        Some(Value::I64(n)) => *n,
        Some(Value::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

/// Embedded raw JSON (RawExtension, FieldsV1, apiextensions JSON); absent → `null`.
fn raw_json(msg: &DynamicMessage, what: &str) -> Result<Json, String> {
    match msg.get_field_by_number(1).as_deref() {
        Some(Value::Bytes(raw)) if msg.has_field_by_number(1) && !raw.is_empty() => {
            serde_json::from_slice(raw).map_err(|e| format!("{what} holds no JSON ({e})"))
        }
        Some(Value::String(raw)) if !raw.is_empty() => {
            serde_json::from_str(raw).map_err(|e| format!("{what} holds no JSON ({e})"))
        }
        _ => Ok(Json::Null),
    }
}

/// Types with a custom Go MarshalJSON; `None` for ordinary messages.
fn special_json(msg: &DynamicMessage, unknown: &mut Vec<String>) -> Result<Option<Json>, String> {
    let desc = msg.descriptor();
    let full = desc.full_name();
    let json = match full {
        names::TIME | names::MICRO_TIME => {
            if msg.fields().next().is_none() {
                Json::Null
            } else {
                let seconds = int_field(msg, 1);
                let nanos = i32::try_from(int_field(msg, 2)).unwrap_or(0);
                let text = if full == names::TIME {
                    wellknown::format_time(seconds)
                } else {
                    wellknown::format_micro_time(seconds, nanos)
                };
                Json::String(text.ok_or_else(|| format!("time {seconds}s is out of range"))?)
            }
        }
        names::DURATION => Json::String(wellknown::format_duration(int_field(msg, 1))),
        names::QUANTITY => {
            let text = string_field(msg, 1);
            Json::String(if text.is_empty() {
                "0".to_string()
            } else {
                text
            })
        }
        names::INT_OR_STRING => {
            if int_field(msg, 1) == 1 {
                Json::String(string_field(msg, 3))
            } else {
                Json::from(int_field(msg, 2))
            }
        }
        names::RAW_EXTENSION => raw_json(msg, "RawExtension")?,
        names::FIELDS_V1 => raw_json(msg, "FieldsV1")?,
        _ if is_apiextensions(full, "JSON") => raw_json(msg, "JSON")?,
        _ if is_apiextensions(full, "JSONSchemaPropsOrBool") => {
            match msg.get_field_by_number(2).as_deref() {
                Some(Value::Message(schema)) if msg.has_field_by_number(2) => {
                    message_json(schema, unknown)?
                }
                _ => Json::Bool(matches!(
                    msg.get_field_by_number(1).as_deref(),
                    Some(Value::Bool(true))
                )),
            }
        }
        _ if is_apiextensions(full, "JSONSchemaPropsOrArray")
            || is_apiextensions(full, "JSONSchemaPropsOrStringArray") =>
        {
            // Field 2 is the array form (schemas or strings), field 1 the single schema.
            match msg.get_field_by_number(2).as_deref() {
                Some(list @ Value::List(items)) if !items.is_empty() => field_json(list, unknown)?,
                _ => match msg.get_field_by_number(1).as_deref() {
                    Some(Value::Message(schema)) if msg.has_field_by_number(1) => {
                        message_json(schema, unknown)?
                    }
                    _ => Json::Null,
                },
            }
        }
        _ if is_string_list_wrapper(msg) => match msg.get_field_by_number(1).as_deref() {
            Some(list @ Value::List(items)) if !items.is_empty() => field_json(list, unknown)?,
            _ => Json::Null,
        },
        _ => return Ok(None),
    };
    for field in msg.unknown_fields() {
        unknown.push(format!("{full} field {}", field.number()));
    }
    Ok(Some(json))
}

pub(crate) fn is_apiextensions(full: &str, short: &str) -> bool {
    full.strip_prefix("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(_, name)| name == short)
}

/// `metav1.Verbs` and the `ExtraValue`s: Go `[]string` types wrapped in a message on the wire.
pub(crate) fn is_string_list_wrapper(msg: &impl ReflectMessage) -> bool {
    let desc = msg.descriptor();
    matches!(desc.name(), "Verbs" | "ExtraValue")
        && desc.fields().len() == 1
        && desc
            .get_field(1)
            .is_some_and(|f| f.is_list() && f.name() == "items" && f.kind() == Kind::String)
}
