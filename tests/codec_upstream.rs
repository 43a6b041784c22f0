//! Kubernetes' own round-trip data (`tests/data/k8s-api-testdata`, from kubernetes/api): every
//! core/v1 and apps/v1 kind that kube-apiserver stores in etcd, as written by releases older than
//! the descriptors the binary carries. Each must decode exactly to the JSON that release serves:
//! protobuf fields of stable APIs are only added, and removed ones are reserved, so the newest
//! descriptors read every older release.

use std::path::{Path, PathBuf};

use kubeboot::codec::{self, Descriptors, Format};
use serde_json::Value;

/// The 21 core/apps v1 kinds kube-apiserver keeps in etcd.
const STORED: &[&str] = &[
    "apps.v1.ControllerRevision",
    "apps.v1.DaemonSet",
    "apps.v1.Deployment",
    "apps.v1.ReplicaSet",
    "apps.v1.StatefulSet",
    "core.v1.ConfigMap",
    "core.v1.Endpoints",
    "core.v1.Event",
    "core.v1.LimitRange",
    "core.v1.Namespace",
    "core.v1.Node",
    "core.v1.PersistentVolume",
    "core.v1.PersistentVolumeClaim",
    "core.v1.Pod",
    "core.v1.PodTemplate",
    "core.v1.RangeAllocation",
    "core.v1.ReplicationController",
    "core.v1.ResourceQuota",
    "core.v1.Secret",
    "core.v1.Service",
    "core.v1.ServiceAccount",
];

/// The kept releases, or with `KUBE_API_TESTDATA=DIR` (a `testdata/` of kubernetes/api) any
/// release or `HEAD` for the ignored check below.
fn dir(release: &str) -> PathBuf {
    match std::env::var_os("KUBE_API_TESTDATA") {
        Some(root) => PathBuf::from(root).join(release),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/k8s-api-testdata")
            .join(release),
    }
}

/// `<release>/<name>.<ext>` (names hold dots, so no `with_extension`).
fn file(release: &str, name: &str, ext: &str) -> PathBuf {
    dir(release).join(format!("{name}.{ext}"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first differing path between two JSON values, to make a failure readable.
fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let keys: std::collections::BTreeSet<_> = g.keys().chain(w.keys()).collect();
            keys.into_iter().find_map(|k| match (g.get(k), w.get(k)) {
                (Some(a), Some(b)) => first_difference(&format!("{path}.{k}"), a, b),
                (a, b) => Some(format!("{path}.{k}: got {a:?}, want {b:?}")),
            })
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(&format!("{path}[{i}]"), a, b)),
        _ if got == want => None,
        _ => Some(format!("{path}: got {got}, want {want}")),
    }
}

fn check_release(release: &str) {
    let failures = failures(release);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn failures(release: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for name in STORED {
        let stored = read(&file(release, name, "pb"));
        let want: Value = serde_json::from_slice(&read(&file(release, name, "json")))
            .unwrap_or_else(|e| panic!("{name}.json: {e}"));
        match codec::decode(name, &stored) {
            Ok(decoded) => {
                assert_eq!(decoded.format, Format::Protobuf, "{release} {name}");
                if decoded.descriptors != Descriptors::Release {
                    failures.push(format!(
                        "{release} {name}: needed {:?}",
                        decoded.descriptors
                    ));
                }
                if let Some(diff) = first_difference("", &decoded.object, &want) {
                    failures.push(format!("{release} {name}: {diff}"));
                }
                if !decoded.unknown_fields.is_empty() {
                    failures.push(format!(
                        "{release} {name}: unknown fields {:?}",
                        decoded.unknown_fields
                    ));
                }
            }
            Err(e) => failures.push(format!("{release} {name}: {e}")),
        }
    }
    failures
}

/// `KUBE_API_TESTDATA=…/testdata KUBE_API_RELEASES="v1.35.0 v1.36.0 HEAD" cargo test --test
/// codec_upstream -- --ignored --nocapture`: how the other releases fare, reported, not asserted
/// (a release newer than the descriptors may carry fields they cannot know).
#[test]
#[ignore]
fn codec_reports_other_releases() {
    let releases = std::env::var("KUBE_API_RELEASES").unwrap_or_default();
    for release in releases.split_whitespace() {
        let failures = failures(release);
        println!(
            "{release}: {} of {} exact",
            STORED.len() - failures.len(),
            STORED.len()
        );
        for failure in failures {
            println!("  {failure}");
        }
    }
}

#[test]
fn codec_decodes_every_stored_kind_of_v1_33_exactly() {
    check_release("v1.33.0");
}

#[test]
fn codec_decodes_every_stored_kind_of_v1_34_exactly() {
    check_release("v1.34.0");
}

#[test]
fn codec_encodes_what_it_decodes_for_every_stored_kind() {
    for release in ["v1.33.0", "v1.34.0"] {
        for name in STORED {
            let stored = read(&file(release, name, "pb"));
            let object = codec::decode(name, &stored)
                .unwrap_or_else(|e| panic!("{release} {name}: {e}"))
                .object;
            let again = codec::decode(name, &codec::encode(&object).expect("encode"))
                .unwrap_or_else(|e| panic!("{release} {name} re-encoded: {e}"));
            assert_eq!(again.object, object, "{release} {name}");
        }
    }
}
