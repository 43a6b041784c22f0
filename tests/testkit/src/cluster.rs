//! Loads a cluster described by YAML files into etcd exactly as kube-apiserver would
//! store it, so recovery is tested against what a real cluster leaves behind:
//! create-time metadata (uid, creationTimestamp, generation), `stringData` folded into
//! `data`, a few pod-template defaults, then the codec's protobuf storage encoding at
//! the api-server's key.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Fixed so that every load of the same files stores the same bytes.
const CREATED: &str = "2026-01-01T00:00:00Z";

/// Every YAML document in `dir/*.yaml`, files in name order, documents in file order.
pub fn read_objects(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(doc).with_context(|| format!("parsing {}", file.display()))?;
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    Ok(out)
}

/// What kube-apiserver does to an object on create before storing it.
pub fn as_created(mut obj: Value) -> Result<Value> {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        bail!("object without metadata: {obj}");
    };
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = fake_uid(&format!("{kind}/{ns}/{name}"));
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(CREATED));
    meta.remove("resourceVersion");
    if matches!(
        kind.as_str(),
        "DaemonSet" | "Deployment" | "ReplicaSet" | "StatefulSet"
    ) {
        meta.insert("generation".into(), json!(1));
        if let Some(spec) = obj
            .pointer_mut("/spec/template/spec")
            .and_then(Value::as_object_mut)
        {
            default_pod_spec(spec);
        }
        if (kind == "DaemonSet" || kind == "Deployment")
            && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
        }
    }
    if kind == "Pod"
        && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
    {
        default_pod_spec(spec);
    }
    if kind == "Secret" {
        fold_string_data(&mut obj);
    }
    Ok(obj)
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("securityContext").or_insert(json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
                c.entry("terminationMessagePath")
                    .or_insert(json!("/dev/termination-log"));
                c.entry("terminationMessagePolicy").or_insert(json!("File"));
            }
        }
    }
}

/// The api-server merges `stringData` into `data` (base64) and never stores it.
fn fold_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, json!(encoded));
        }
    }
}

/// A stable, UUID-shaped uid derived from the object's identity.
fn fake_uid(identity: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in identity.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let hex = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `(etcd key, stored value)` for each object, as kube-apiserver would write them.
pub fn storage_entries(prefix: &str, objects: &[Value]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for obj in objects {
        let obj = as_created(obj.clone())?;
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = kubeboot::registry::key_for(prefix, api_version, kind, ns, name, None)
            .map_err(anyhow::Error::msg)?;
        let value = kubeboot::codec::encode(&obj).with_context(|| format!("encoding {key}"))?;
        out.push((key, value));
    }
    Ok(out)
}

/// Encrypts entries as kube-apiserver with `--encryption-provider-config` would: each
/// value under the group-qualified resource its key belongs to (`secrets`,
/// `daemonsets.apps`), with the etcd key as the AES-GCM authenticated data.
pub fn encrypt_entries(
    prefix: &str,
    entries: &[(String, Vec<u8>)],
    config: &kubeboot::encryption::EncryptionConfig,
) -> Result<Vec<(String, Vec<u8>)>> {
    entries
        .iter()
        .map(|(key, value)| {
            let segment = kubeboot::registry::resource_of_key(prefix, key)
                .with_context(|| format!("{key} is outside {prefix}"))?;
            let group = kubeboot::registry::BUILTIN
                .iter()
                .find(|r| r.segment == segment)
                .map_or("", |r| r.group);
            let plural = segment.rsplit('/').next().unwrap_or(segment);
            let resource = if group.is_empty() {
                plural.to_string()
            } else {
                format!("{plural}.{group}")
            };
            Ok((key.clone(), config.encrypt(&resource, key, value)?))
        })
        .collect()
}

/// The bootkube-style cluster the tests recover: `tests/data/cluster`.
pub fn cluster_data_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/cluster")
}

/// Writes entries into etcd with plain puts, as the api-server does.
pub async fn put_all(
    client: &mut etcd_client::Client,
    entries: &[(String, Vec<u8>)],
) -> Result<()> {
    for (key, value) in entries {
        client
            .put(key.as_str(), value.clone(), None)
            .await
            .with_context(|| format!("put {key}"))?;
    }
    Ok(())
}

/// Stores the bootkube-style test cluster (`tests/data/cluster`) in `etcd` under
/// `/registry`, as kube-apiserver would, and returns what it stored.
pub fn load_into(etcd: &crate::etcd::Etcd) -> Result<Vec<(String, Vec<u8>)>> {
    let objects = read_objects(&cluster_data_dir())?;
    let entries = storage_entries("/registry", &objects)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut c = etcd.client().await?;
        put_all(&mut c, &entries).await
    })?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_is_folded_into_data() {
        let s = as_created(json!({"apiVersion":"v1","kind":"Secret",
            "metadata":{"name":"a","namespace":"b"},"stringData":{"k":"v"}}))
        .unwrap();
        assert_eq!(s["data"]["k"], "dg==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["metadata"]["creationTimestamp"], CREATED);
    }

    #[test]
    fn uids_are_stable_and_distinct() {
        assert_eq!(fake_uid("a"), fake_uid("a"));
        assert_ne!(fake_uid("a"), fake_uid("b"));
        assert_eq!(fake_uid("a").len(), 36);
    }

    #[test]
    fn the_cluster_data_parses() {
        let objs = read_objects(&cluster_data_dir()).unwrap();
        assert!(objs.len() >= 12, "{}", objs.len());
    }
}
