//! Static pods: the files in `--pod-manifest-path` turned into pods the way the real
//! kubelet's file source does it, because `start`, `recover` and the checkpointer all
//! reason about the result: the name gets `-<node>` appended, the namespace defaults to
//! `default`, `spec.nodeName` is set, and the annotations `kubernetes.io/config.source:
//! file` and `kubernetes.io/config.hash` are added. Dotfiles are ignored (the
//! checkpointer writes its temp files as `.<rand>`). A file that does not parse is logged
//! and skipped; it never stops the other pods. So is a pod that references API objects
//! (service account, secrets, configMaps, claims, API-backed projections): the real
//! kubelet refuses those since v1.34 (`PreventStaticPodAPIReferences`,
//! kubernetes/kubernetes#131837), because a static pod must run without an api-server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

pub const SOURCE: &str = "kubernetes.io/config.source";
pub const HASH: &str = "kubernetes.io/config.hash";
pub const MIRROR: &str = "kubernetes.io/config.mirror";

/// One parsed manifest file.
#[derive(Debug, Clone)]
pub struct StaticPod {
    pub path: PathBuf,
    pub pod: Pod,
    pub hash: String,
}

/// FNV-1a 64: a hash that is the same in every build, so a restarted kubelet computes the
/// same `config.hash` and leaves an up-to-date mirror pod alone.
pub fn fnv(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Parses one manifest (YAML or JSON) into the pod the kubelet runs.
pub fn parse(bytes: &[u8], node: &str) -> Result<(Pod, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    let kind = value.get("kind").and_then(|k| k.as_str());
    let api_version = value.get("apiVersion").and_then(|k| k.as_str());
    if kind != Some("Pod") || api_version != Some("v1") {
        return Err(format!(
            "want kind Pod, apiVersion v1; got {kind:?}, {api_version:?}"
        ));
    }
    // The kubelet decodes a static pod with the API's defaults (`tryDecodeSinglePod` in
    // `pkg/kubelet/config/common.go`), so a hostNetwork port claims its host port here
    // exactly as it would through the api-server.
    let mut value = value;
    crate::apiserver::defaults::default_host_network_ports(&mut value);
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let hash = fnv(bytes);
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err("metadata.name is empty".into());
    }
    let spec = pod.spec.as_mut().ok_or("spec is missing")?;
    if spec.containers.is_empty() {
        return Err("spec.containers is empty".into());
    }
    let mut names: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    names.sort_unstable();
    if names.iter().any(|n| n.is_empty()) || names.windows(2).any(|w| w[0] == w[1]) {
        return Err("container names must be non-empty and unique".into());
    }
    if let Some(what) = api_reference(spec) {
        return Err(format!("static pods may not reference {what}"));
    }
    spec.node_name = Some(node.to_string());
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{name}-{node}"));
    meta.namespace.get_or_insert_with(|| "default".into());
    meta.uid = Some(hash.clone());
    let ann = meta.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(SOURCE.into(), "file".into());
    ann.insert(HASH.into(), hash.clone());
    Ok((pod, hash))
}

/// The kind of API object `spec` references, if any (`podutil.HasAPIObjectReference`):
/// only hostPath, emptyDir, downwardAPI and plain-storage volumes are allowed.
pub fn api_reference(spec: &k8s_openapi::api::core::v1::PodSpec) -> Option<&'static str> {
    let sa = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref());
    if sa.is_some_and(|s| !s.is_empty()) {
        return Some("serviceaccounts");
    }
    let containers = || {
        spec.init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
    };
    let env_refs = |secret: bool| {
        containers().any(|c| {
            let env = c.env.iter().flatten().filter_map(|e| e.value_from.as_ref());
            let from = c.env_from.iter().flatten();
            if secret {
                env.clone().any(|v| v.secret_key_ref.is_some())
                    || from.clone().any(|f| f.secret_ref.is_some())
            } else {
                env.clone().any(|v| v.config_map_key_ref.is_some())
                    || from.clone().any(|f| f.config_map_ref.is_some())
            }
        })
    };
    let volumes = spec.volumes.iter().flatten();
    let sources = volumes
        .clone()
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()));
    let secret_vol = volumes
        .clone()
        .any(|v| v.secret.is_some() || v.azure_file.is_some());
    if spec
        .image_pull_secrets
        .as_ref()
        .is_some_and(|s| !s.is_empty())
        || env_refs(true)
        || secret_vol
        || sources.clone().any(|s| s.secret.is_some())
    {
        return Some("secrets");
    }
    if env_refs(false)
        || volumes.clone().any(|v| v.config_map.is_some())
        || sources.clone().any(|s| s.config_map.is_some())
    {
        return Some("configmaps");
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Some("resourceclaims");
    }
    if volumes
        .clone()
        .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
    {
        return Some("persistentvolumeclaims");
    }
    if volumes.clone().any(|v| v.csi.is_some()) {
        return Some("csidrivers (via CSI volumes)");
    }
    sources.clone().find_map(|s| {
        if s.service_account_token.is_some() {
            Some("serviceaccounts (via projected volumes)")
        } else if s.cluster_trust_bundle.is_some() {
            Some("clustertrustbundles")
        } else if s.pod_certificate.is_some() {
            Some("podcertificates")
        } else {
            None
        }
    })
}

/// Reads every manifest in `dir` (sorted by file name; a later file that repeats a pod
/// name is skipped like the real kubelet does). A missing dir is no pods.
pub fn scan(dir: &Path, node: &str) -> Vec<StaticPod> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut out: Vec<StaticPod> = Vec::new();
    for path in paths {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        match parse(&bytes, node) {
            Ok((pod, hash)) => {
                let dup = out.iter().any(|s| {
                    s.pod.metadata.name == pod.metadata.name
                        && s.pod.metadata.namespace == pod.metadata.namespace
                });
                if dup {
                    log_once(&path, &hash, "duplicate pod name; skipped");
                } else {
                    out.push(StaticPod { path, pod, hash });
                }
            }
            Err(e) => log_once(&path, &fnv(&bytes), &e),
        }
    }
    out
}

/// A bad file is reported once per content, not every 500 ms.
fn log_once(path: &Path, hash: &str, msg: &str) {
    use std::sync::Mutex;
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let key = format!("{}#{hash}", path.display());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&key) {
        crate::note!(
            "fake-kubelet: skipping static pod file {}: {msg}",
            path.display()
        );
        seen.push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_pod_naming_and_annotations() {
        let y = b"apiVersion: v1\nkind: Pod\nmetadata: {name: etcd, namespace: kube-system}\nspec:\n  containers: [{name: etcd, image: etcd}]\n";
        let (pod, hash) = parse(y, "n1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("etcd-n1"));
        let ann = pod.metadata.annotations.unwrap();
        assert_eq!(ann[SOURCE], "file");
        assert_eq!(ann[HASH], hash);
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("n1"));
        let j = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c"}]}}"#;
        assert_eq!(
            parse(j, "n").unwrap().0.metadata.namespace.as_deref(),
            Some("default")
        );
    }

    #[test]
    fn api_references_are_refused() {
        let pod = |spec: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\nspec:\n  containers: [{{name: a}}]\n{spec}"
            )
        };
        for (spec, what) in [
            ("  serviceAccountName: sa\n", "serviceaccounts"),
            (
                "  volumes: [{name: v, secret: {secretName: s}}]\n",
                "secrets",
            ),
            ("  imagePullSecrets: [{name: s}]\n", "secrets"),
            (
                "  volumes: [{name: v, configMap: {name: c}}]\n",
                "configmaps",
            ),
            (
                "  volumes: [{name: v, projected: {sources: [{configMap: {name: c}}]}}]\n",
                "configmaps",
            ),
            (
                "  volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}]\n",
                "serviceaccounts (via projected volumes)",
            ),
            (
                "  volumes: [{name: v, persistentVolumeClaim: {claimName: c}}]\n",
                "persistentvolumeclaims",
            ),
        ] {
            let err = parse(pod(spec).as_bytes(), "n").unwrap_err();
            assert_eq!(
                err,
                format!("static pods may not reference {what}"),
                "{spec}"
            );
        }
        let env = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, env: [{name: E, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]\n";
        assert!(parse(env.as_bytes(), "n").unwrap_err().contains("secrets"));
        let ok = "  automountServiceAccountToken: false\n  volumes: [{name: h, hostPath: {path: /x}}, {name: e, emptyDir: {}}, {name: d, downwardAPI: {items: []}}, {name: p, projected: {sources: [{downwardAPI: {items: []}}]}}]\n";
        assert!(parse(pod(ok).as_bytes(), "n").is_ok());
    }

    #[test]
    fn bad_manifests_are_errors_not_panics() {
        for bad in [
            &b"\xff"[..],
            b"kind: Deployment\napiVersion: apps/v1\n",
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n",
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}, {name: a}]}\n",
            b"apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a}]}\n",
            b"{ not json",
            b": : :",
            b"",
        ] {
            assert!(parse(bad, "n").is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
