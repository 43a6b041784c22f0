//! Renders a realistic control plane (`tests/data/render/`), writes it with
//! `assets::write`, and checks every bootstrap pod with an independent validator:
//! `kubernetes-validate --strict -k 1.35.0` (docs/design.md §6). A pod that k8s-openapi
//! accepts but the Kubernetes schema rejects is a bug.
//!
//! The validator and its skip rules are in `kubeboot_testkit::validate`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kubeboot::model::{ControlPlane, SourceInfo, SourceKind};
use kubeboot::render::{RenderOptions, render};
use kubeboot::{assets, model::AssetDir};
use kubeboot_testkit::validate;
use serde::Deserialize;

fn control_plane() -> ControlPlane {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/render");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut cp = ControlPlane {
        source: SourceInfo {
            kind: SourceKind::Snapshot,
            location: "tests/data/render".into(),
            revision: Some(42),
            integrity: Some("verified".into()),
            sha256: None,
            size: None,
            read_at: "2026-01-01T00:00:00Z".into(),
        },
        daemonsets: vec![],
        deployments: vec![],
        secrets: vec![],
        config_maps: vec![],
        kubeconfig: Some(b"apiVersion: v1\nkind: Config\n".to_vec()),
        warnings: vec![],
        unknown_fields: vec![],
    };
    for path in paths {
        let text = fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = serde_yaml_ng::Value::deserialize(doc).unwrap();
            let kind = v
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            match kind.as_str() {
                "DaemonSet" => cp
                    .daemonsets
                    .push(serde_yaml_ng::from_value::<DaemonSet>(v).unwrap()),
                "Deployment" => cp
                    .deployments
                    .push(serde_yaml_ng::from_value::<Deployment>(v).unwrap()),
                "Secret" => cp
                    .secrets
                    .push(serde_yaml_ng::from_value::<Secret>(v).unwrap()),
                "ConfigMap" => cp
                    .config_maps
                    .push(serde_yaml_ng::from_value::<ConfigMap>(v).unwrap()),
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
        }
    }
    cp
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn rendered_pods_pass_kubernetes_validate() {
    let cp = control_plane();
    let rendered = render(&cp, &RenderOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recovered");
    assets::write(&dir, &rendered, false).unwrap();

    // What went to disk is what was rendered, with the promised modes.
    assert_eq!(assets::read(&dir).unwrap(), rendered);
    for (rel, want) in [
        ("", 0o700),
        ("tls", 0o700),
        ("tls/secrets/kube-apiserver", 0o700),
        ("tls/secrets/kube-apiserver/apiserver.key", 0o400),
        ("tls/secrets/kube-scheduler-tls/serving/tls.crt", 0o400),
        ("tls/config-maps/kube-scheduler-config/policy.bin", 0o600),
        (
            "tls/projected/bootstrap-kube-controller-manager/in-cluster/ca/ca.crt",
            0o400,
        ),
        ("auth", 0o700),
        ("auth/kubeconfig", 0o600),
        ("bootstrap-manifests", 0o755),
        ("kubeboot.json", 0o644),
    ] {
        assert_eq!(mode(&dir.join(rel)), want, "mode of {rel:?}");
    }
    assert!(
        !dir.join("tls/secrets/kube-scheduler-tls/unused-extra")
            .exists(),
        "items honoured"
    );
    assert!(
        !dir.join("tls/secrets/kube-scheduler-extra").exists(),
        "optional secret absent"
    );

    // Rendering again gives byte-identical files.
    assert_eq!(
        render(&control_plane(), &RenderOptions::default()).unwrap(),
        rendered
    );

    let manifests: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = fs::read_dir(dir.join("bootstrap-manifests"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let names: Vec<String> = manifests
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "bootstrap-kube-apiserver.yaml",
            "bootstrap-kube-controller-manager.yaml",
            "bootstrap-kube-scheduler.yaml"
        ]
    );

    validate::assert_valid(&manifests);
}

#[test]
fn kubeboot_json_records_what_the_operator_must_fix() {
    let rendered: AssetDir = render(&control_plane(), &RenderOptions::default()).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&rendered.get("kubeboot.json").unwrap().bytes).unwrap();
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warnings.iter().any(|w| w.contains("serviceAccountToken")));
    assert!(warnings.iter().any(|w| w.contains("downwardAPI")));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("kube-scheduler then ignores --kubeconfig"))
    );
    assert_eq!(report["objects"]["deployments"], 3);
    assert_eq!(report["components"].as_array().unwrap().len(), 3);
}
