//! The resources the double serves and the legacy discovery documents that describe
//! them. kubectl resolves `po`, `deploy`, `ds` … and every kind in `-f` files through
//! `/api`, `/apis` and the per-version `APIResourceList`s, so names, kinds, scope,
//! verbs and short names must be what kube-apiserver reports. Aggregated discovery
//! (`apidiscovery.k8s.io/v2`) is not served: clients fall back to these documents when
//! the response is plain `application/json`. Custom resources of established CRDs
//! (`crd.rs`) are passed in by the caller and listed beside the built-in ones.

use serde_json::{Value, json};

use super::resources::VERBS;
pub use super::resources::{ApiResource, RESOURCES};

/// The resource at `/<prefix>/<group>/<version>/.../<plural>`, built in or in `custom`.
pub fn find(
    group: &str,
    version: &str,
    plural: &str,
    custom: &[&'static ApiResource],
) -> Option<&'static ApiResource> {
    RESOURCES
        .iter()
        .chain(custom.iter().copied())
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether a group is served by the built-in table (its paths never name custom resources).
pub fn is_builtin_group(group: &str) -> bool {
    RESOURCES.iter().any(|r| r.group == group) || super::review::is_review_group(group)
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
        [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

/// Every non-core group with its versions, built-in groups first.
fn groups(custom: &[&'static ApiResource]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = vec![
        (super::review::AUTHN_GROUP, vec!["v1"]),
        (super::review::AUTHZ_GROUP, vec!["v1"]),
    ];
    for r in RESOURCES.iter().chain(custom.iter().copied()) {
        if r.group.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": gvs, "preferredVersion": preferred})
}

/// `/apis`.
pub fn group_list(custom: &[&'static ApiResource]) -> Value {
    let groups: Vec<Value> = groups(custom)
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn group(name: &str, custom: &[&'static ApiResource]) -> Option<Value> {
    let all = groups(custom);
    let (_, versions) = all.iter().find(|(g, _)| *g == name)?;
    let mut g = group_json(name, versions);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub fn resource_list(group: &str, version: &str, custom: &[&'static ApiResource]) -> Option<Value> {
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .chain(custom.iter().copied())
        .filter(|r| r.group == group && r.version == version)
    {
        let mut main = json!({"name": r.plural, "singularName": r.singular,
            "namespaced": r.namespaced, "kind": r.kind, "verbs": VERBS});
        if !r.short_names.is_empty() {
            main["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            main["categories"] = json!(r.categories);
        }
        list.push(main);
        if r.status {
            list.push(
                json!({"name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if r.kind == "Pod" {
            list.push(
                json!({"name": "pods/binding", "singularName": "", "namespaced": true,
                "kind": "Binding", "verbs": ["create"]}),
            );
        }
        if r.kind == "ServiceAccount" {
            list.push(
                json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
                "verbs": ["create"]}),
            );
        }
    }
    if list.is_empty() {
        return super::review::resource_list(group, version);
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
        "resources": list}),
    )
}

/// `/version`: the Kubernetes minor the codec's protos come from.
pub fn version() -> Value {
    json!({"major": "1", "minor": "35", "gitVersion": "v1.35.0+kubeboot-fake-apiserver",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_has_a_registry_layout() {
        for r in RESOURCES.iter().filter(|r| r.kind != "PriorityClass") {
            assert!(
                kubeboot::registry::builtin(&r.api_version(), r.kind).is_some(),
                "{}",
                r.kind
            );
        }
        let pc = find("scheduling.k8s.io", "v1", "priorityclasses", &[]).unwrap();
        assert_eq!(pc.segment(), "priorityclasses");
        let crd = find(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            &[],
        )
        .unwrap();
        assert_eq!(
            crd.segment(),
            "apiextensions.k8s.io/customresourcedefinitions"
        );
    }

    #[test]
    fn short_names_are_listed() {
        let core = resource_list("", "v1", &[]).unwrap();
        let pods = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods")
            .unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert!(group("apps", &[]).is_some());
        assert!(resource_list("apps", "v2", &[]).is_none());
        assert!(group("example.com", &[]).is_none());
    }
}
