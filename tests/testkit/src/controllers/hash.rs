//! The pod template hash behind `pod-template-hash` (Deployments) and
//! `controller-revision-hash` (DaemonSets): a change of template is a change of hash,
//! and the same template always hashes the same, across processes and restarts.
//!
//! Like `controller.ComputeHash` it is FNV-1a 32 rendered with `rand.SafeEncodeString`,
//! but over the template's JSON rather than Go's `spew` dump, so the values differ from
//! a real cluster's (nothing compares them across implementations).

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// `rand.SafeEncodeString`'s alphabet: no vowels, no confusable characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `rand.SafeEncodeString(fmt.Sprint(hash))`: each decimal digit mapped into the alphabet.
pub fn safe_encode(n: u32) -> String {
    n.to_string()
        .bytes()
        .map(|b| {
            let i = usize::from(b) % ALPHANUMS.len();
            ALPHANUMS.get(i).map_or('x', |c| char::from(*c))
        })
        .collect()
}

/// The hash of a template. Typed serialisation orders struct fields by declaration and
/// map keys (labels, annotations) by key, so equal templates give equal bytes.
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let bytes = serde_json::to_vec(t).unwrap_or_default();
    safe_encode(fnv1a32(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, labels: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn fnv_reference_values() {
        // From the FNV reference test vectors.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_uses_the_alphabet() {
        assert_eq!(safe_encode(0), "4");
        assert!(
            safe_encode(u32::MAX)
                .bytes()
                .all(|b| ALPHANUMS.contains(&b))
        );
    }

    #[test]
    fn stable_for_equal_templates_and_changes_with_them() {
        let a = template("img:1", json!({"b": "2", "a": "1"}));
        let same = template("img:1", json!({"a": "1", "b": "2"}));
        let other = template("img:2", json!({"a": "1", "b": "2"}));
        assert_eq!(template_hash(&a), template_hash(&same));
        assert_ne!(template_hash(&a), template_hash(&other));
    }
}
