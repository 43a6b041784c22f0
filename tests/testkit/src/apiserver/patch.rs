//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and a simplified
//! strategic merge patch. kubectl `apply` sends strategic merge patches with
//! `$setElementOrder/...` directives and list items identified by merge keys
//! (`containers` by `name`, ...); applying those as a plain merge patch would replace
//! whole lists with fragments, so lists of objects whose field has a known merge key
//! are merged by that key. Known difference: only the merge keys below are known, and
//! of the directives only `$patch: delete|replace` and `$retainKeys` are honoured; the
//! rest (`$setElementOrder`, `$deleteFromPrimitiveList`) are dropped.

use serde_json::{Map, Value};

use super::status::{ApiError, ApiResult};

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The merge key of a list field in the kinds served (from the Go types' tags).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "conditions" | "taints" => "type",
        "ownerReferences" => "uid",
        "ports" => "port",
        _ => return None,
    })
}

/// The simplified strategic merge patch described above.
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = p.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return;
    };
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k.as_str())));
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match (v, merge_key(k), t.get_mut(k)) {
            (Value::Null, ..) => {
                t.remove(k);
            }
            (Value::Array(items), Some(key), Some(Value::Array(existing))) => {
                merge_list(existing, items, k, key);
            }
            (Value::Object(_), ..) if v.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            _ => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                if v.is_object() {
                    strategic(slot, v);
                } else {
                    *slot = strip_directives(v);
                }
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], field: &str, key: &str) {
    // Container ports merge on containerPort, service ports on port.
    let key = if field == "ports" && items.iter().any(|i| i.get("containerPort").is_some()) {
        "containerPort"
    } else {
        key
    };
    for item in items {
        let id = item.get(key);
        let pos = id.and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic(&mut existing[i], item),
            (None, false) => existing.push(strip_directives(item)),
            (None, true) => {}
        }
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The parent container and last token of a JSON pointer.
fn parent<'a>(doc: &'a mut Value, path: &str) -> ApiResult<(&'a mut Value, String)> {
    let bad = || ApiError::bad_request(format!("json patch: invalid path {path:?}"));
    let (head, last) = path.rsplit_once('/').ok_or_else(bad)?;
    let p = doc.pointer_mut(head).ok_or_else(bad)?;
    Ok((p, unescape(last)))
}

fn remove(doc: &mut Value, path: &str) -> ApiResult<Value> {
    let bad = || ApiError::bad_request(format!("json patch: cannot remove {path:?}"));
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(bad),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn add(doc: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let bad = || ApiError::bad_request(format!("json patch: cannot add at {path:?}"));
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, value);
        }
        Value::Array(a) if last == "-" => a.push(value),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => a.insert(i, value),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    }
    Ok(())
}

/// RFC 6902.
pub fn json_patch(doc: &mut Value, ops: &Value) -> ApiResult<()> {
    let ops = ops
        .as_array()
        .ok_or_else(|| ApiError::bad_request("json patch: expected an array of operations"))?;
    for op in ops {
        let field = |f: &str| op.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        let (path, from) = (field("path"), field("from"));
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request("json patch: missing value"))
        };
        match field("op").as_str() {
            "add" => add(doc, &path, value()?)?,
            "remove" => drop(remove(doc, &path)?),
            "replace" => {
                remove(doc, &path)?;
                add(doc, &path, value()?)?;
            }
            "move" => {
                let v = remove(doc, &from)?;
                add(doc, &path, v)?;
            }
            "copy" => {
                let v = doc.pointer(&from).cloned().ok_or_else(|| {
                    ApiError::bad_request(format!("json patch: no value at {from:?}"))
                })?;
                add(doc, &path, v)?;
            }
            "test" => {
                if doc.pointer(&path) != Some(&value()?) {
                    return Err(ApiError::invalid(format!(
                        "json patch: test failed at {path:?}"
                    )));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "json patch: unknown op {other:?}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_nulls() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge(&mut t, &json!({"a": null, "b": {"c": 5}}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "args": ["1"]}, {"name": "b", "image": "y"}]}});
        let p = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "x2"}, {"name": "b", "$patch": "delete"}]}});
        strategic(&mut t, &p);
        assert_eq!(
            t,
            json!({"spec": {"containers": [{"name": "a", "image": "x2", "args": ["1"]}]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 2]});
        let ops = json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "replace", "path": "/l/0", "value": 9},
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "test", "path": "/l/2", "value": 3}]);
        json_patch(&mut d, &ops).unwrap();
        assert_eq!(
            d,
            json!({"metadata": {"labels": {"b": "2"}}, "l": [9, 2, 3]})
        );
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
        assert!(json_patch(&mut d, &json!({"op": "x"})).is_err());
    }
}
