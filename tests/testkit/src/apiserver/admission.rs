//! Mutating admission on create, after defaulting, as the real api-server's enabled-by-
//! default plugins run.
//!
//! DefaultTolerationSeconds (`plugin/pkg/admission/defaulttolerationseconds/admission.go`,
//! `Plugin.Admit`): a pod that tolerates neither `node.kubernetes.io/not-ready:NoExecute`
//! nor `node.kubernetes.io/unreachable:NoExecute` (a toleration with an empty key or
//! effect counts) gets `{key, operator: Exists, effect: NoExecute, tolerationSeconds:
//! 300}` for the missing one, so the taint eviction controller moves it off a dead node
//! after five minutes, while DaemonSet pods (which tolerate both for ever) stay.
//!
//! *Still simplified.* Only on create (upstream also admits updates, which can then only
//! add the same tolerations); no other admission plugin lives here.

use serde_json::{Value, json};

/// `defaultNotReadyTolerationSeconds` and `defaultUnreachableTolerationSeconds`.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Runs the create-time mutating plugins on `obj`, of kind `kind`.
pub fn admit_create(kind: &str, obj: &mut Value) {
    if kind == "Pod" {
        default_toleration_seconds(obj);
    }
}

fn covers(t: &Value, key: &str) -> bool {
    let k = t["key"].as_str().unwrap_or("");
    let e = t["effect"].as_str().unwrap_or("");
    (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
}

/// DefaultTolerationSeconds on one pod.
pub fn default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [NOT_READY, UNREACHABLE] {
        if !list.iter().any(|t| covers(t, key)) {
            list.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tolerations(mut pod: Value) -> Value {
        admit_create("Pod", &mut pod);
        pod["spec"]["tolerations"].clone()
    }

    #[test]
    fn a_plain_pod_gets_both_with_300_seconds() {
        let t = tolerations(json!({"spec": {"containers": []}}));
        assert_eq!(
            t,
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
    }

    #[test]
    fn given_tolerations_are_kept_and_count() {
        // A daemon pod's: for ever, untouched.
        let daemon = json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(
            tolerations(json!({"spec": {"tolerations": daemon.clone()}})),
            daemon
        );
        // Tolerate-everything covers both.
        let all = json!([{"operator": "Exists"}]);
        assert_eq!(
            tolerations(json!({"spec": {"tolerations": all.clone()}})),
            all
        );
        // A NoSchedule one does not; only the missing one is added.
        let t = tolerations(json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"},
            {"key": NOT_READY, "operator": "Exists", "tolerationSeconds": 5}]}}));
        let added: Vec<&str> = t
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["tolerationSeconds"] == json!(300))
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert_eq!(added, [UNREACHABLE]);
        // Not a pod: nothing.
        let mut dep = json!({"spec": {}});
        admit_create("Deployment", &mut dep);
        assert_eq!(dep, json!({"spec": {}}));
    }
}
