//! What kube-apiserver does to an object before storing it: create-time metadata and
//! defaults (via `cluster::as_created`, plus a real uid and timestamp), system fields
//! kept across updates, `status` owned by the status subresource, generation bumps on
//! spec changes, and the system namespaces it creates at startup. Stored bytes then
//! match what a real cluster would leave in etcd for the same requests.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};
use tokio::sync::watch as signal;

use super::discovery::{self, ApiResource};
use super::status::{ApiError, ApiResult};
use super::store::Store;

/// The namespaces the real server's system-namespaces controller keeps.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Whether `metadata.generation` is tracked (workloads; pods since 1.34).
fn tracks_generation(res: &ApiResource) -> bool {
    res.has_generation() || res.kind == "Pod"
}

pub(super) fn random_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A `generateName` suffix: five characters from the real server's alphabet.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// The object as the real server stores it on create (namespace and name already set).
pub fn on_create(res: &ApiResource, obj: Value) -> ApiResult<Value> {
    let history = obj.pointer("/spec/revisionHistoryLimit").cloned();
    let mut obj =
        crate::cluster::as_created(obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(h) = history {
        obj["spec"]["revisionHistoryLimit"] = h;
    }
    let m = meta(&mut obj);
    m.insert("uid".into(), json!(random_uid()));
    m.insert("creationTimestamp".into(), json!(now()));
    for f in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        m.remove(f);
    }
    if tracks_generation(res) {
        m.insert("generation".into(), json!(1));
    }
    match res.kind {
        "Namespace" => {
            let name = m.get("name").cloned().unwrap_or_default();
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), name);
            }
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "Pod" => {
            if obj["status"].get("phase").is_none() {
                obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(&obj)});
            }
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.entry("enableServiceLinks").or_insert(json!(true));
                spec.entry("priority").or_insert(json!(0));
            }
            default_host_network_ports(&mut obj);
        }
        "Secret" if obj.get("type").is_none() => obj["type"] = json!("Opaque"),
        "Service" => default_service(&mut obj),
        "CustomResourceDefinition" => super::crd::on_create(&mut obj),
        _ => {}
    }
    Ok(obj)
}

/// `SetDefaults_Pod` → `defaultHostNetworkPorts` (`pkg/apis/core/v1/defaults.go`): under
/// hostNetwork every port of a container or init container without a `hostPort` gets
/// `hostPort = containerPort`. Only Pods are defaulted, never templates, so a
/// Deployment's template keeps what it was given while its pods claim host ports; the
/// scheduler's NodePorts filter and the kubelet's admission see only `hostPort`, so
/// without this a double would let two hostNetwork pods share a port.
pub fn default_host_network_ports(pod: &mut Value) {
    if pod.pointer("/spec/hostNetwork") != Some(&json!(true)) {
        return;
    }
    for list in ["containers", "initContainers"] {
        let Some(containers) = pod["spec"][list].as_array_mut() else {
            continue;
        };
        for c in containers {
            let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in ports {
                let unset = p
                    .get("hostPort")
                    .is_none_or(|h| h.as_i64().unwrap_or(0) == 0);
                if let (true, Some(cp)) = (unset, p.get("containerPort").cloned()) {
                    p["hostPort"] = cp;
                }
            }
        }
    }
}

fn qos_class(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let res = |c: &Value, k: &str| c["resources"][k].as_object().cloned().unwrap_or_default();
    if containers
        .iter()
        .all(|c| res(c, "requests").is_empty() && res(c, "limits").is_empty())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        let (req, lim) = (res(c, "requests"), res(c, "limits"));
        ["cpu", "memory"]
            .iter()
            .all(|k| lim.get(*k).is_some() && req.get(*k).is_none_or(|r| Some(r) == lim.get(*k)))
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn default_service(obj: &mut Value) {
    let Some(spec) = obj["spec"].as_object_mut() else {
        return;
    };
    spec.entry("type").or_insert(json!("ClusterIP"));
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if spec["type"] != "ExternalName" {
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        port.entry("protocol").or_insert(json!("TCP"));
        let p = port.get("port").cloned().unwrap_or(Value::Null);
        port.entry("targetPort").or_insert(p);
    }
}

/// Gives a ClusterIP service a free address from 10.96.0.0/12, as the allocator does.
pub async fn allocate_cluster_ip(store: &Store, obj: &mut Value) -> ApiResult<()> {
    let spec = &obj["spec"];
    if spec["type"] == "ExternalName" || spec.get("clusterIP").is_some_and(|v| v != "") {
        if let Some(ip) = spec.get("clusterIP").cloned().filter(|v| v != "") {
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
        return Ok(());
    }
    let prefix = format!("{}/services/specs/", store.prefix);
    let (services, _) = store.list(&prefix, None, 0).await?;
    let used: Vec<String> = services
        .iter()
        .filter_map(|s| s.object["spec"]["clusterIP"].as_str().map(String::from))
        .collect();
    let base = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    let ip = (10..(1u32 << 20) - 1)
        .map(|i| Ipv4Addr::from(base + i).to_string())
        .find(|ip| !used.contains(ip))
        .ok_or_else(|| ApiError::internal("service IP range is full"))?;
    obj["spec"]["clusterIP"] = json!(ip);
    obj["spec"]["clusterIPs"] = json!([ip]);
    Ok(())
}

/// The object to store when `new` replaces `old` through the main resource or `sub`.
pub fn on_update(res: &ApiResource, old: &Value, mut new: Value, sub: Option<&str>) -> Value {
    if sub == Some("status") {
        let mut out = old.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                out.as_object_mut().map(|o| o.remove("status"));
            }
        }
        return out;
    }
    let m = meta(&mut new);
    for f in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ] {
        match old["metadata"].get(f) {
            Some(v) => m.insert(f.into(), v.clone()),
            None => m.remove(f),
        };
    }
    if res.status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
    if tracks_generation(res) && new.get("spec") != old.get("spec") {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
        new["metadata"]["generation"] = json!(g + 1);
    }
    if res.kind == "Service" && new["spec"].get("clusterIP").is_none() {
        for f in ["clusterIP", "clusterIPs"] {
            if let Some(v) = old["spec"].get(f) {
                new["spec"][f] = v.clone();
            }
        }
    }
    if res.kind == "Secret"
        && let Some(Value::Object(strings)) =
            new.as_object_mut().and_then(|o| o.remove("stringData"))
    {
        let b64 = base64::engine::general_purpose::STANDARD;
        for (k, v) in strings {
            new["data"][k] = json!(b64.encode(v.as_str().unwrap_or_default()));
        }
    }
    new
}

/// Creates the system namespaces once etcd answers (the real server does it at
/// startup); retries until it succeeds or the server stops.
pub async fn ensure_system_namespaces(
    store: Arc<Store>,
    done: Arc<AtomicBool>,
    mut stop: signal::Receiver<bool>,
) {
    let Some(res) = discovery::find("", "v1", "namespaces", &[]) else {
        return;
    };
    loop {
        let mut ok = true;
        for name in SYSTEM_NAMESPACES {
            let key = format!("{}/namespaces/{name}", store.prefix);
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            let done = match on_create(res, obj) {
                Ok(obj) => store.create(&key, &obj).await.is_ok(),
                Err(_) => false,
            };
            ok &= done;
        }
        if ok {
            done.store(true, Ordering::SeqCst);
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(plural: &str, group: &str) -> &'static ApiResource {
        discovery::find(group, "v1", plural, &[]).unwrap()
    }

    #[test]
    fn create_sets_system_fields() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "resourceVersion": "5"},
            "spec": {"revisionHistoryLimit": 3, "template": {"spec": {"containers": []}}}});
        let d = on_create(res("deployments", "apps"), d).unwrap();
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 3);
        assert_eq!(d["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(d["metadata"].get("resourceVersion").is_none());
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}});
        let ns = on_create(res("namespaces", ""), ns).unwrap();
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "x");
        assert_eq!(name_suffix().len(), 5);
    }

    #[test]
    fn update_keeps_status_and_bumps_generation() {
        let r = res("deployments", "apps");
        let old = json!({"metadata": {"uid": "u", "generation": 2}, "spec": {"replicas": 1},
            "status": {"replicas": 1}});
        let new = json!({"metadata": {"uid": "other"}, "spec": {"replicas": 2},
            "status": {"replicas": 9}});
        let out = on_update(r, &old, new.clone(), None);
        assert_eq!(out["metadata"]["uid"], "u");
        assert_eq!(out["metadata"]["generation"], 3);
        assert_eq!(out["status"]["replicas"], 1);
        let out = on_update(r, &old, new, Some("status"));
        assert_eq!(out["status"]["replicas"], 9);
        assert_eq!(out["spec"]["replicas"], 1);
    }
}
