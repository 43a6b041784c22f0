//! The ServiceAccount admission plugin's mutation on pod create: what puts the token
//! volume into a pod, so a kubelet never has to read a ServiceAccount (the Node
//! authorizer would refuse it: a node may only create tokens for service accounts).
//!
//! Upstream: `plugin/pkg/admission/serviceaccount/admission.go`, `Plugin.Admit`:
//! mirror pods are left alone; `serviceAccountName` defaults to `default`; when the pod's
//! `automountServiceAccountToken` (else the ServiceAccount's, else true) says so and a
//! container does not already mount `/var/run/secrets/kubernetes.io/serviceaccount`, a
//! projected volume `kube-api-access-<5 random>` is added (`TokenVolumeSource`: a bound
//! token of 3607 s, `ca.crt` from the `kube-root-ca.crt` ConfigMap, the namespace through
//! the downward API; mode 0644) and mounted read-only there in every container and init
//! container that lacks it.
//!
//! *Still simplified:* upstream refuses (403) a pod whose ServiceAccount does not exist
//! yet; here it is admitted without the token volume. Recovery never creates a pod
//! before its ServiceAccount (the rendered manifests put the ServiceAccount first, and a
//! restored etcd holds both). Image pull secrets are not copied from the account.

use serde_json::{Value, json};

use super::defaults::name_suffix;
use super::status::ApiResult;
use super::store::Store;

pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// `serviceaccount.DefaultTokenVolumeSource` lifetime: one hour and seven seconds.
const TOKEN_SECONDS: i64 = 3607;

/// The pod's automount decision: its own field, else its account's, else true.
pub fn automount(pod: &Value, account: &Value) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// The volume upstream's `TokenVolumeSource` describes.
pub fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
}

/// Adds the token volume and mounts to `pod` given its account (`Value::Null` when the
/// account does not exist: nothing is mounted). Pure, for the unit tests.
pub fn mutate(pod: &mut Value, account: &Value) {
    if !pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_null() {
        return;
    }
    let spec = &mut pod["spec"];
    if spec["serviceAccountName"].as_str().unwrap_or("").is_empty() {
        spec["serviceAccountName"] = json!("default");
    }
    if account.is_null() || !automount(pod, account) {
        return;
    }
    let name = format!("kube-api-access-{}", name_suffix());
    let mount = json!({"name": name, "readOnly": true, "mountPath": SA_MOUNT});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let has = c["volumeMounts"].as_array().into_iter().flatten().any(|m| {
                m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(SA_MOUNT)
            });
            if has {
                continue;
            }
            match c["volumeMounts"].as_array_mut() {
                Some(m) => m.push(mount.clone()),
                None => c["volumeMounts"] = json!([mount.clone()]),
            }
            needed = true;
        }
    }
    if needed {
        match pod["spec"]["volumes"].as_array_mut() {
            Some(v) => v.push(token_volume(&name)),
            None => pod["spec"]["volumes"] = json!([token_volume(&name)]),
        }
    }
}

/// Reads the pod's ServiceAccount from etcd and runs [`mutate`].
pub async fn admit(store: &Store, namespace: &str, pod: &mut Value) -> ApiResult<()> {
    if !pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_null() {
        return Ok(());
    }
    let name = match pod["spec"]["serviceAccountName"].as_str() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => "default".to_string(),
    };
    let key = format!(
        "{}{name}",
        kubeboot::registry::namespace_prefix(&store.prefix, "serviceaccounts", namespace)
    );
    let account = store.get(&key).await?.map_or(Value::Null, |s| s.object);
    mutate(pod, &account);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn an_automounting_pod_gets_the_volume_in_every_container() {
        let mut p = pod(json!({"initContainers": [{"name": "i"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "own", "mountPath": format!("{SA_MOUNT}/")}]}]}));
        mutate(&mut p, &json!({"metadata": {"name": "default"}}));
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        let vols = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let name = vols[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        let sources = &vols[0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            p["spec"]["initContainers"][0]["volumeMounts"][0]["name"],
            name
        );
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["readOnly"],
            true
        );
        // b mounts its own at the path: left as it is.
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn the_pod_flag_wins_over_the_account_and_mirror_pods_are_untouched() {
        let off = json!({"automountServiceAccountToken": false});
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        mutate(&mut p, &off);
        assert!(p["spec"]["volumes"].is_null());
        let mut p =
            pod(json!({"automountServiceAccountToken": true, "containers": [{"name": "a"}]}));
        mutate(&mut p, &off);
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        let mut m = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "x"}}, "spec": {"containers": [{"name": "a"}]}});
        let before = m.clone();
        mutate(&mut m, &json!({}));
        assert_eq!(m, before);
        // No account: no volume (the simplification the module doc lists).
        let mut p = pod(json!({"serviceAccountName": "ghost", "containers": [{"name": "a"}]}));
        mutate(&mut p, &Value::Null);
        assert!(p["spec"]["volumes"].is_null());
        assert_eq!(p["spec"]["serviceAccountName"], "ghost");
    }
}
