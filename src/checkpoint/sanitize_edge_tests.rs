//! sanitize: what the output must never contain, what is refused, and arbitrary input.

use super::tests::*;
use super::*;
use k8s_openapi::api::core::v1::Volume;
use proptest::prelude::*;

/// Mirrors the kubelet's `HasAPIObjectReference` (kubernetes#131837) for what we emit.
fn references_api_object(p: &Pod) -> bool {
    let s = spec_of(p);
    s.service_account_name.is_some()
        || s.image_pull_secrets.is_some()
        || s.resource_claims.is_some()
        || s.volumes.iter().flatten().any(|v| {
            v.secret.is_some()
                || v.config_map.is_some()
                || v.projected
                    .as_ref()
                    .is_some_and(|p| p.sources.iter().flatten().any(|s| s.downward_api.is_none()))
        })
        || s.containers.iter().any(|c| {
            c.env_from.is_some()
                || c.env.iter().flatten().any(|e| {
                    e.value_from.as_ref().is_some_and(|f| {
                        f.secret_key_ref.is_some() || f.config_map_key_ref.is_some()
                    })
                })
        })
}

fn has_null(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.iter().any(has_null),
        serde_json::Value::Object(o) => o.values().any(has_null),
        _ => false,
    }
}

#[test]
fn output_is_pod_json_the_kubelet_accepts_and_round_trips() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    assert!(!references_api_object(&c.pod));
    let json = serde_json::to_value(&c.pod).unwrap();
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["kind"], "Pod");
    assert!(!has_null(&json), "{json:#}");
    assert!(json.get("status").is_none());
    let back: Pod = serde_json::from_value(json).unwrap();
    assert_eq!(back, c.pod, "the daemon compares what it reads back");
}

#[test]
fn is_parent_table() {
    let with = |pairs: &[(&str, &str)]| {
        let mut p = Pod::default();
        p.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        p
    };
    let yes = (ANNOTATION_CHECKPOINT, "true");
    assert!(is_parent(&with(&[yes])));
    assert!(is_parent(&with(&[
        yes,
        ("kubernetes.io/config.source", "api")
    ])));
    assert!(!is_parent(&with(&[(ANNOTATION_CHECKPOINT, "false")])));
    assert!(!is_parent(&with(&[])));
    assert!(!is_parent(&Pod::default()));
    assert!(!is_parent(&with(&[yes, (ANNOTATION_CHECKPOINT_OF, "x")])));
    assert!(!is_parent(&with(&[
        yes,
        ("kubernetes.io/config.mirror", "h")
    ])));
    assert!(!is_parent(&with(&[
        yes,
        ("kubernetes.io/config.source", "file")
    ])));
}

#[test]
fn data_dirs_are_the_three_kinds_of_the_pod() {
    let key = PodKey::new("kube-system", "kube-apiserver-abcde");
    assert_eq!(
        data_dirs("/ck/", &key),
        [
            "/ck/secrets/kube-system/kube-apiserver-abcde",
            "/ck/configmaps/kube-system/kube-apiserver-abcde",
            "/ck/projected/kube-system/kube-apiserver-abcde",
        ]
    );
}

fn set_volume(yaml: &str) -> impl FnOnce(&mut Pod) {
    let v: Volume = serde_yaml_ng::from_str(yaml).unwrap();
    move |p| p.spec.as_mut().unwrap().volumes.as_mut().unwrap()[0] = v
}

#[test]
fn what_a_static_pod_cannot_have_is_an_error_naming_the_pod() {
    type Edit = Box<dyn FnOnce(&mut Pod)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "persistentVolumeClaim",
            Box::new(set_volume(
                "{name: secrets, persistentVolumeClaim: {claimName: c}}",
            )),
        ),
        (
            "ephemeral",
            Box::new(set_volume("{name: secrets, ephemeral: {}}")),
        ),
        (
            "CSI",
            Box::new(set_volume("{name: secrets, csi: {driver: d}}")),
        ),
        (
            "glusterfs",
            Box::new(set_volume(
                "{name: secrets, glusterfs: {endpoints: e, path: p}}",
            )),
        ),
        (
            "reads a Secret",
            Box::new(set_volume(
                "{name: secrets, azureFile: {secretName: s, shareName: x}}",
            )),
        ),
        (
            "reads a Secret",
            Box::new(set_volume(
                "{name: secrets, rbd: {monitors: [m], image: i, secretRef: {name: s}}}",
            )),
        ),
        ("does not know", Box::new(set_volume("{name: secrets}"))),
        (
            "clusterTrustBundle",
            Box::new(set_volume(
                "{name: secrets, projected: {sources: [{clusterTrustBundle: {path: p, signerName: s}}]}}",
            )),
        ),
        (
            "podCertificate",
            Box::new(set_volume(
                "{name: secrets, projected: {sources: [{podCertificate: {keyType: RSA3072, signerName: s}}]}}",
            )),
        ),
        (
            "does not know",
            Box::new(set_volume(
                "{name: secrets, projected: {sources: [{}, {serviceAccountToken: {path: t}}]}}",
            )),
        ),
        (
            "node",
            Box::new(set_volume(
                "{name: secrets, projected: {sources: [{serviceAccountToken: {path: t}}, {downwardAPI: {items: [{path: m, resourceFieldRef: {resource: limits.memory}}]}}]}}",
            )),
        ),
        (
            "reads field",
            Box::new(set_volume(
                "{name: secrets, projected: {sources: [{serviceAccountToken: {path: t}}, {downwardAPI: {items: [{path: m, fieldRef: {fieldPath: spec.nodeName}}]}}]}}",
            )),
        ),
        (
            "not a safe path",
            Box::new(set_volume(
                "{name: secrets, secret: {secretName: s, items: [{key: k, path: ../k}]}}",
            )),
        ),
        (
            "not a safe path",
            Box::new(set_volume(
                "{name: secrets, projected: {sources: [{serviceAccountToken: {path: /token}}]}}",
            )),
        ),
        (
            "not a safe path",
            Box::new(set_volume("{name: a/b, configMap: {name: c}}")),
        ),
        (
            "object name",
            Box::new(set_volume("{name: secrets, configMap: {name: ../c}}")),
        ),
        (
            "no secretName",
            Box::new(set_volume("{name: secrets, secret: {}}")),
        ),
        (
            "reads secret",
            Box::new(|p: &mut Pod| {
                p.spec.as_mut().unwrap().containers[0].env = Some(vec![
                    serde_yaml_ng::from_str(
                        "{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}",
                    )
                    .unwrap(),
                ]);
            }),
        ),
        (
            "reads configmap",
            Box::new(|p: &mut Pod| {
                p.spec.as_mut().unwrap().containers[0].env_from = Some(vec![
                    serde_yaml_ng::from_str("{configMapRef: {name: c}}").unwrap(),
                ]);
            }),
        ),
        (
            "resourceClaims",
            Box::new(|p: &mut Pod| {
                p.spec.as_mut().unwrap().resource_claims = Some(vec![
                    serde_yaml_ng::from_str("{name: gpu, resourceClaimName: g}").unwrap(),
                ]);
            }),
        ),
        (
            "no metadata.uid",
            Box::new(|p: &mut Pod| p.metadata.uid = None),
        ),
        ("no spec", Box::new(|p: &mut Pod| p.spec = None)),
    ];
    for (want, edit) in cases {
        let err = edited(edit).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in {err}");
        assert!(err.contains("kube-system/kube-apiserver-abcde"), "{err}");
    }
    let err = sanitize(&apiserver(), "relative").unwrap_err().to_string();
    assert!(err.contains("not an absolute path"), "{err}");
    let mut p = apiserver();
    p.metadata.name = None;
    let err = sanitize(&p, ROOT).unwrap_err().to_string();
    assert!(err.contains("kube-system/<no name>"), "{err}");
}

proptest! {
    /// Any names and paths: never a panic, and every host dir stays under the root.
    #[test]
    fn never_panics_and_stays_under_the_root(
        name in "\\PC{0,12}", ns in "\\PC{0,8}", vol in "\\PC{0,8}", path in "\\PC{0,12}",
        uid in proptest::option::of("[a-z0-9-]{0,8}"),
    ) {
        let mut p = apiserver();
        p.metadata.name = Some(name);
        p.metadata.namespace = Some(ns);
        p.metadata.uid = uid;
        let s = p.spec.as_mut().unwrap();
        let vols = s.volumes.as_mut().unwrap();
        vols[0].name = vol.clone();
        vols[0].secret.as_mut().unwrap().items.as_mut().unwrap()[0].path = path;
        s.containers[0].volume_mounts.as_mut().unwrap()[0].name = vol;
        if let Ok(c) = sanitize(&p, ROOT) {
            for m in &c.materialize {
                let rest = m.host_dir.strip_prefix(ROOT).unwrap();
                prop_assert_eq!(rest.split('/').filter(|s| !s.is_empty()).count(), 4);
                prop_assert!(!rest.split('/').any(|s| s == ".." || s == "."));
            }
            prop_assert!(!references_api_object(&c.pod));
        }
    }
}
