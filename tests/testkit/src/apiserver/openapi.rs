//! A minimal OpenAPI v3 document set. kubectl `create`/`apply` validate by default and
//! first ask, through `/openapi/v3`, whether the server validates fields itself (a
//! `fieldValidation` query parameter on the kind's PATCH operation); if so they send
//! `fieldValidation=Strict` and leave it to the server, which this double does through
//! the codec (unknown fields are an error there). No schemas are served, so kubectl's
//! client-side apply falls back to its compiled-in types for strategic merge patches.

use serde_json::{Map, Value, json};

use super::discovery::{ApiResource, RESOURCES};

fn gv_path(r: &ApiResource) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

/// `/openapi/v3`: the per-group-version documents.
pub fn root(custom: &[&'static ApiResource]) -> Value {
    let mut paths = Map::new();
    for r in RESOURCES.iter().chain(custom.iter().copied()) {
        let p = gv_path(r);
        let url = format!("/openapi/v3/{p}?hash=0");
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<gv path>`: one PATCH operation per kind with `fieldValidation`.
pub fn document(gv: &str, custom: &[&'static ApiResource]) -> Option<Value> {
    let mut paths = Map::new();
    for r in RESOURCES
        .iter()
        .chain(custom.iter().copied())
        .filter(|r| gv_path(r) == gv)
    {
        let base = format!("/{}", gv_path(r));
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", r.kind),
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": op}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths, "components": {"schemas": {}}}),
    )
}
