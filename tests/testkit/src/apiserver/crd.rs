//! CustomResourceDefinitions and their custom resources, as the apiextensions-apiserver
//! inside kube-apiserver serves them. A created CRD is not usable at once: its controllers
//! accept the names and set `NamesAccepted` and `Established` a moment later, and only then
//! are its resources served and listed in discovery. The double does the same after
//! [`ESTABLISH_AFTER`], so clients that `kubectl wait --for condition=established` (or
//! retry "no matches for kind") are exercised. Custom resources are stored as JSON under
//! `<prefix>/<group>/<plural>/[<namespace>/]<name>`, as the real server stores them.
//!
//! Storage: the real server stores CRDs themselves as JSON too (`LegacyCodec`), but in
//! the `apiextensions.k8s.io/v1beta1` form (issue 82292,
//! <https://github.com/kubernetes/kubernetes/issues/82292>); the double stores the v1
//! object as JSON. Not done: schema validation, pruning and defaulting of custom
//! resources, conversion webhooks (every served version is converted by rewriting
//! `apiVersion` only), name-conflict checks, `scale` subresources, printer columns.
//!
//! The served resources are read from etcd on each request that may need them, so
//! several doubles on one etcd agree; their `ApiResource`s are interned (leaked once per
//! distinct definition, a bounded amount in a test process).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::discovery::ApiResource;
use super::status::{ApiError, ApiResult};
use super::store::Store;

/// How long after a create the names are accepted and the CRD established.
pub const ESTABLISH_AFTER: Duration = Duration::from_millis(200);
const CRD_SEGMENT: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// Whether an object is a CRD (stored as JSON, not protobuf).
pub fn stored_as_json(object: &Value) -> bool {
    object["kind"] == "CustomResourceDefinition"
        && object["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"))
}

fn invalid(name: &str, what: String) -> ApiError {
    ApiError::invalid(format!(
        "CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: {what}"
    ))
}

/// The checks a client most often trips over (the real validation is much larger).
pub fn validate(crd: &Value) -> ApiResult<()> {
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() || !group.contains('.') {
        return Err(invalid(
            name,
            format!(
                "spec.group: Invalid value: {group:?}: should be a domain with at least one dot"
            ),
        ));
    }
    if plural.is_empty() || spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        return Err(invalid(
            name,
            "spec.names.plural, spec.names.kind: Required value".into(),
        ));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            name,
            format!(
                "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
            ),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        return Err(invalid(
            name,
            "spec.scope: Unsupported value: supported values: \"Cluster\", \"Namespaced\"".into(),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if versions.is_empty() || storage != 1 {
        return Err(invalid(
            name,
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        ));
    }
    Ok(())
}

/// Create-time defaults and the fresh status the real strategy leaves.
pub fn on_create(crd: &mut Value) {
    let kind = crd["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let names = &mut crd["spec"]["names"];
    if names.get("singular").is_none() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    if crd["spec"].get("conversion").is_none() {
        crd["spec"]["conversion"] = json!({"strategy": "None"});
    }
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| v["name"].clone())
        .collect();
    crd["status"] = json!({"acceptedNames": {"kind": "", "plural": ""}, "conditions": [],
        "storedVersions": storage});
}

fn established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

/// After `after`, accepts the names of every CRD not yet established (what the
/// apiextensions naming and establishing controllers do).
pub async fn establish_pending(store: Arc<Store>, after: Duration) {
    tokio::time::sleep(after).await;
    let prefix = format!("{}/{CRD_SEGMENT}/", store.prefix);
    for _ in 0..5 {
        let Ok((crds, _)) = store.list(&prefix, None, 0).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut raced = false;
        for cur in crds.iter().filter(|c| !established(&c.object)) {
            let mut next = cur.object.clone();
            let now = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            next["status"]["acceptedNames"] = next["spec"]["names"].clone();
            next["status"]["conditions"] = json!([
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
                 "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": now,
                 "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
            ]);
            raced |= !matches!(store.update(cur, &next).await, Ok(Some(_)));
        }
        if !raced {
            return;
        }
    }
}

/// The custom resources of every established CRD, one per served version.
pub async fn served(store: &Store) -> Vec<&'static ApiResource> {
    let prefix = format!("{}/{CRD_SEGMENT}/", store.prefix);
    let Ok((crds, _)) = store.list(&prefix, None, 0).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for crd in crds.iter().map(|c| &c.object).filter(|c| established(c)) {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        for v in spec["versions"].as_array().into_iter().flatten() {
            if v["served"] != true {
                continue;
            }
            out.push(intern(Def {
                group: spec["group"].as_str().unwrap_or("").into(),
                version: v["name"].as_str().unwrap_or("").into(),
                plural: names["plural"].as_str().unwrap_or("").into(),
                singular: names["singular"].as_str().unwrap_or("").into(),
                kind: names["kind"].as_str().unwrap_or("").into(),
                namespaced: spec["scope"] == "Namespaced",
                short_names: strs(&names["shortNames"]),
                status: v["subresources"].get("status").is_some(),
                categories: strs(&names["categories"]),
            }));
        }
    }
    out
}

/// Deletes every custom resource of a CRD (the real server's finalizer does it).
pub async fn delete_custom_resources(store: &Store, crd: &Value) -> ApiResult<()> {
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() || plural.is_empty() {
        return Ok(());
    }
    store
        .delete_prefix(&format!("{}/{group}/{plural}/", store.prefix))
        .await
}

/// An owned resource definition, before interning.
#[derive(PartialEq)]
struct Def {
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    namespaced: bool,
    short_names: Vec<String>,
    status: bool,
    categories: Vec<String>,
}

static INTERNED: Mutex<Vec<&'static ApiResource>> = Mutex::new(Vec::new());

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_all(v: &[String]) -> &'static [&'static str] {
    Box::leak(
        v.iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

fn same(r: &ApiResource, d: &Def) -> bool {
    let eq = |a: &[&str], b: &[String]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y);
    r.group == d.group
        && r.version == d.version
        && r.plural == d.plural
        && r.singular == d.singular
        && r.kind == d.kind
        && r.namespaced == d.namespaced
        && r.status == d.status
        && eq(r.short_names, &d.short_names)
        && eq(r.categories, &d.categories)
}

fn intern(d: Def) -> &'static ApiResource {
    let mut all = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = all.iter().find(|r| same(r, &d)) {
        return r;
    }
    let r: &'static ApiResource = Box::leak(Box::new(ApiResource {
        group: leak(&d.group),
        version: leak(&d.version),
        plural: leak(&d.plural),
        singular: leak(&d.singular),
        kind: leak(&d.kind),
        namespaced: d.namespaced,
        short_names: leak_all(&d.short_names),
        status: d.status,
        categories: leak_all(&d.categories),
        custom: true,
    }));
    all.push(r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    #[test]
    fn validation_and_defaults() {
        let mut c = crd();
        validate(&c).unwrap();
        on_create(&mut c);
        assert_eq!(c["spec"]["names"]["singular"], "widget");
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["status"]["storedVersions"], json!(["v1"]));
        assert!(!established(&c) && stored_as_json(&c));
        let mut bad = crd();
        bad["metadata"]["name"] = json!("gadgets.example.com");
        assert!(
            validate(&bad)
                .unwrap_err()
                .message
                .contains("metadata.name")
        );
        let mut bad = crd();
        bad["spec"]["versions"][0]["storage"] = json!(false);
        assert_eq!(validate(&bad).unwrap_err().code, 422);
    }

    #[test]
    fn interning_reuses_equal_definitions() {
        let def = || Def {
            group: "example.com".into(),
            version: "v1".into(),
            plural: "widgets".into(),
            singular: "widget".into(),
            kind: "Widget".into(),
            namespaced: true,
            short_names: vec!["wd".into()],
            status: false,
            categories: vec![],
        };
        let (a, b) = (intern(def()), intern(def()));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.segment(), "example.com/widgets");
        assert!(a.custom && a.has_generation());
    }
}
