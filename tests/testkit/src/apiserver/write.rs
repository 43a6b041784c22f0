//! Write verbs: create (POST), update (PUT), patch (PATCH), delete (DELETE) and the pod
//! `binding` subresource. Each write is an etcd transaction guarded by the revision it
//! was computed from: a client's stale `resourceVersion` is a 409 Conflict, and a race
//! with another writer is retried, as the real server's GuaranteedUpdate does.
//! Known differences: deletes are immediate (no graceful pod deletion, no finalizers;
//! deleting a namespace deletes its objects at once, deleting a CRD its custom resources),
//! and `dryRun=All` is honoured.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Reply;
use super::crd;
use super::defaults;
use super::noderestriction::admit_update;
use super::patch;
use super::rest::{Incoming, Target, key};
use super::status::{self, ApiError, ApiResult};
use super::store::{Store, Stored};

/// Attempts at a read-modify-write before giving up with 409.
const RETRIES: usize = 8;

fn media_type(req: &Incoming<'_>) -> String {
    req.content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn body(req: &Incoming<'_>) -> ApiResult<Value> {
    let mt = media_type(req);
    let undecodable = |e: String| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    };
    if mt.contains("protobuf") {
        // kubectl's typed `create` subcommands send `k8s\0` protobuf; the codec reads it.
        if !req.body.starts_with(b"k8s\0") {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format (got {mt})"),
            ));
        }
        return kubeboot::codec::decode("request body", &req.body)
            .map(|d| d.object)
            .map_err(|e| undecodable(e.to_string()));
    }
    let parsed = if mt.contains("yaml") {
        serde_yaml_ng::from_slice::<Value>(&req.body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(&req.body).map_err(|e| e.to_string())
    };
    parsed.map_err(undecodable)
}

/// Checks an object against the path and fills in its type and namespace.
fn check(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    };
    let want = t.res.api_version();
    for (field, expected) in [("apiVersion", want.as_str()), ("kind", t.res.kind)] {
        match map.get(field).and_then(Value::as_str) {
            None | Some("") => {
                map.insert(field.into(), json!(expected));
            }
            Some(got) if got == expected => {}
            Some(got) => {
                return Err(ApiError::bad_request(format!(
                    "the {field} of the provided object ({got}) does not match the expected {field} ({expected})"
                )));
            }
        }
    }
    for field in ["metadata", "spec", "status", "data", "stringData"] {
        if map
            .get(field)
            .is_some_and(|v| !v.is_object() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!("{field} must be an object")));
        }
    }
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    match &t.namespace {
        Some(path_ns) if t.res.namespaced => {
            if !ns.is_empty() && ns != path_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta["namespace"] = json!(path_ns);
        }
        _ => {
            meta.as_object_mut().map(|m| m.remove("namespace"));
        }
    }
    if let Some(name) = &t.name {
        let got = meta.get("name").and_then(Value::as_str).unwrap_or("");
        if got.is_empty() {
            meta["name"] = json!(name);
        } else if got != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({got}) does not match the name on the URL ({name})"
            )));
        }
    }
    Ok(())
}

/// kube-apiserver's name rule: RBAC objects only need to be a valid path segment
/// (`system:node`, `kubeboot:kube-scheduler`); everything else here is a DNS subdomain.
fn valid_name(group: &str, name: &str) -> bool {
    if group == "rbac.authorization.k8s.io" {
        return !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%']);
    }
    !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn dry_run(q: &HashMap<String, String>) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

fn resource_version(obj: &Value) -> ApiResult<Option<i64>> {
    match obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        None | Some("") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))),
    }
}

pub async fn create(
    store: &Arc<Store>,
    t: &Target,
    q: &HashMap<String, String>,
    req: &Incoming<'_>,
) -> ApiResult<Reply> {
    let mut obj = body(req)?;
    check(t, &mut obj)?;
    let meta = &mut obj["metadata"];
    let mut name = meta["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        let generate = meta["generateName"].as_str().unwrap_or("");
        if generate.is_empty() {
            return Err(ApiError::invalid(format!(
                "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                t.res.kind
            )));
        }
        name = format!("{generate}{}", defaults::name_suffix());
        meta["name"] = json!(name);
    }
    if !valid_name(t.res.group, &name) {
        return Err(ApiError::invalid(format!(
            "{} {name:?} is invalid: metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            t.res.kind
        )));
    }
    if let Some(ns) = &t.namespace
        && t.res.namespaced
    {
        let ns_key = format!("{}/namespaces/{ns}", store.prefix);
        if store.get(&ns_key).await?.is_none() {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
    }
    let t = Target {
        name: Some(name.clone()),
        namespace: t.namespace.clone(),
        sub: None,
        ..*t
    };
    let crd = t.res.kind == "CustomResourceDefinition";
    if crd {
        crd::validate(&obj)?;
    }
    let mut obj = defaults::on_create(t.res, obj)?;
    super::admission::admit_create(t.res.kind, &mut obj);
    if t.res.kind == "Pod" {
        let ns = t.namespace.as_deref().unwrap_or("default");
        super::sa_admission::admit(store, ns, &mut obj).await?;
    }
    if t.res.kind == "Service" {
        defaults::allocate_cluster_ip(store, &mut obj).await?;
    }
    if dry_run(q) {
        return Ok(Reply::Json(201, obj));
    }
    match store.create(&key(store, &t)?, &obj).await? {
        Some(s) => {
            if crd {
                tokio::spawn(crd::establish_pending(store.clone(), crd::ESTABLISH_AFTER));
            }
            Ok(Reply::Json(201, s.object))
        }
        None => Err(ApiError::already_exists(t.res.group, t.res.plural, &name)),
    }
}

async fn current(store: &Store, t: &Target) -> ApiResult<Stored> {
    let name = t.name.as_deref().unwrap_or_default();
    store
        .get(&key(store, t)?)
        .await?
        .ok_or_else(|| ApiError::not_found(t.res.group, t.res.plural, name))
}

fn conflict(t: &Target) -> ApiError {
    ApiError::conflict(
        t.res.group,
        t.res.plural,
        t.name.as_deref().unwrap_or_default(),
    )
}

/// Read, compute, write guarded by the read revision; retries races. `compute` gets the
/// current object and returns the new one or an error.
/// What update and patch store: `obj` with the server-owned fields of `cur` kept, or
/// 409 when the client's resourceVersion (`want`, from the body or the patched object)
/// is not the stored one.
fn updated(t: &Target, cur: &Stored, obj: Value, want: Option<i64>) -> ApiResult<Value> {
    if want.is_some_and(|rv| rv != cur.mod_revision) {
        return Err(conflict(t));
    }
    Ok(defaults::on_update(
        t.res,
        &cur.object,
        obj,
        t.sub.as_deref(),
    ))
}

async fn guaranteed_update(
    store: &Store,
    t: &Target,
    dry: bool,
    mut compute: impl FnMut(&Stored) -> ApiResult<Value>,
) -> ApiResult<Stored> {
    for _ in 0..RETRIES {
        let cur = current(store, t).await?;
        let new = compute(&cur)?;
        if dry {
            let mut s = cur.clone();
            s.object = new;
            return Ok(s);
        }
        if let Some(s) = store.update(&cur, &new).await? {
            return Ok(s);
        }
    }
    Err(conflict(t))
}

pub async fn update(
    store: &Arc<Store>,
    t: &Target,
    q: &HashMap<String, String>,
    req: &Incoming<'_>,
) -> ApiResult<Reply> {
    let mut obj = body(req)?;
    check(t, &mut obj)?;
    let want = resource_version(&obj)?;
    let s = guaranteed_update(store, t, dry_run(q), |cur| {
        admit_update(req.by_node.as_ref(), &cur.object, &obj)?;
        updated(t, cur, obj.clone(), want)
    })
    .await?;
    Ok(Reply::Json(200, s.object))
}

pub async fn patch(
    store: &Arc<Store>,
    t: &Target,
    q: &HashMap<String, String>,
    req: &Incoming<'_>,
) -> ApiResult<Reply> {
    let mt = media_type(req);
    let p = body(req)?;
    let apply = mt == "application/apply-patch+yaml";
    if apply && store.get(&key(store, t)?).await?.is_none() && t.sub.is_none() {
        return create(store, t, q, req).await;
    }
    let s = guaranteed_update(store, t, dry_run(q), |cur| {
        let mut obj = cur.object.clone();
        match mt.as_str() {
            "application/merge-patch+json" | "application/apply-patch+yaml" => patch::merge(&mut obj, &p),
            "application/strategic-merge-patch+json" => patch::strategic(&mut obj, &p),
            "application/json-patch+json" => patch::json_patch(&mut obj, &p)?,
            other => {
                return Err(ApiError::new(415, "UnsupportedMediaType", format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                )));
            }
        }
        check(t, &mut obj)?;
        let want = resource_version(&obj)?;
        admit_update(req.by_node.as_ref(), &cur.object, &obj)?;
        updated(t, cur, obj, want)
    })
    .await?;
    Ok(Reply::Json(200, s.object))
}

pub async fn delete(
    store: &Arc<Store>,
    t: &Target,
    q: &HashMap<String, String>,
    req: &Incoming<'_>,
) -> ApiResult<Reply> {
    let opts = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        body(req)?
    };
    let name = t.name.as_deref().unwrap_or_default();
    for _ in 0..RETRIES {
        let cur = current(store, t).await?;
        let pre = &opts["preconditions"];
        let uid = cur.object["metadata"]["uid"].as_str().unwrap_or("");
        if let Some(want) = pre["uid"].as_str().filter(|w| *w != uid) {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(want) = pre["resourceVersion"]
            .as_str()
            .filter(|w| *w != cur.mod_revision.to_string())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    cur.mod_revision
                ),
            ));
        }
        if dry_run(q) || store.delete(&cur.key, cur.mod_revision).await?.is_some() {
            if t.res.kind == "Namespace" && !dry_run(q) {
                delete_namespace_contents(store, name).await?;
            }
            if t.res.kind == "CustomResourceDefinition" && !dry_run(q) {
                crd::delete_custom_resources(store, &cur.object).await?;
            }
            return Ok(Reply::Json(
                200,
                match t.res.kind {
                    "Pod" | "Namespace" | "Service" | "CustomResourceDefinition" => cur.object,
                    _ => status::success(t.res.group, t.res.plural, name, Some(uid)),
                },
            ));
        }
    }
    Err(conflict(t))
}

/// What the namespace controller does after a namespace is deleted.
async fn delete_namespace_contents(store: &Store, ns: &str) -> ApiResult<()> {
    let custom = crd::served(store).await;
    for r in super::discovery::RESOURCES
        .iter()
        .chain(custom.iter().copied())
        .filter(|r| r.namespaced)
    {
        let prefix = kubeboot::registry::namespace_prefix(&store.prefix, &r.segment(), ns);
        store.delete_prefix(&prefix).await?;
    }
    Ok(())
}

/// `POST .../pods/NAME/binding`: what the scheduler does to place a pod.
pub async fn bind(store: &Arc<Store>, t: &Target, req: &Incoming<'_>) -> ApiResult<Reply> {
    let binding = body(req)?;
    let node = binding["target"]["name"].as_str().unwrap_or("").to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding is invalid: target.name: Required value",
        ));
    }
    let name = t.name.as_deref().unwrap_or_default();
    let pod = Target {
        sub: None,
        name: t.name.clone(),
        namespace: t.namespace.clone(),
        ..*t
    };
    guaranteed_update(store, &pod, false, |cur| {
        let mut obj = cur.object.clone();
        if let Some(n) = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::new(409, "Conflict", format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{n}\""
            )));
        }
        obj["spec"]["nodeName"] = json!(node);
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": now});
        match obj["status"]["conditions"].as_array_mut() {
            Some(c) => {
                c.retain(|c| c["type"] != "PodScheduled");
                c.push(cond);
            }
            None => obj["status"]["conditions"] = json!([cond]),
        }
        Ok(obj)
    })
    .await?;
    Ok(Reply::Json(201, status::success("", "pods", name, None)))
}
