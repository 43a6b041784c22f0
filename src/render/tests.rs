//! Whole-render tests: a small control plane in YAML, rendered, and the output checked.

use super::*;
use crate::model::{SourceInfo, SourceKind};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};

const APISERVER: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-apiserver, namespace: kube-system, labels: {k8s-app: kube-apiserver}, annotations: {deprecated.daemonset.template.generation: "3"}}
spec:
  selector: {matchLabels: {k8s-app: kube-apiserver}}
  template:
    metadata:
      labels: {k8s-app: kube-apiserver, tier: control-plane}
      annotations: {checkpointer.alpha.coreos.com/checkpoint: "true", keep.example.com/x: "y"}
    spec:
      nodeSelector: {node-role.kubernetes.io/control-plane: ""}
      serviceAccountName: kube-apiserver
      securityContext: {runAsNonRoot: true, runAsUser: 65534}
      tolerations: [{operator: Exists}]
      containers:
      - name: kube-apiserver
        image: registry.k8s.io/kube-apiserver:v1.35.0
        command: [kube-apiserver, --secure-port=6443]
        securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true}
        volumeMounts: [{name: secrets, mountPath: /etc/kubernetes/secrets}]
      volumes:
      - name: secrets
        secret: {secretName: kube-apiserver, defaultMode: 420}
"#;

// Modes are decimal: YAML 1.2 (serde_yaml_ng) reads 0440 as a string, YAML 1.1 as octal.
const SCHEDULER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: kube-scheduler, namespace: kube-system, labels: {component: kube-scheduler}}
spec:
  selector: {matchLabels: {component: kube-scheduler}}
  template:
    metadata: {labels: {component: kube-scheduler}}
    spec:
      serviceAccountName: kube-scheduler
      affinity: {podAntiAffinity: {}}
      containers:
      - name: sched
        image: registry.k8s.io/kube-scheduler:v1.35.0
        command: [kube-scheduler]
        args: [--kubeconfig, /etc/kubernetes/in-cluster/kubeconfig, --v=2]
        ports: [{containerPort: 10259, hostPort: 30259}]
      - name: sidecar
        image: busybox
        command: [sleep, infinity]
      volumes:
      - name: tls
        secret:
          secretName: sched-tls
          defaultMode: 288
          items: [{key: tls.crt, path: serving/tls.crt}, {key: tls.key, path: serving/tls.key, mode: 256}]
      - name: extra
        secret: {secretName: absent, optional: true}
      - name: config
        configMap: {name: sched-config, defaultMode: 493}
      - name: in-cluster
        projected:
          sources:
          - configMap: {name: sched-config, items: [{key: config.yaml, path: kubeconfig}]}
          - serviceAccountToken: {path: token}
"#;

const OBJECTS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: kube-apiserver, namespace: kube-system}
data: {apiserver.key: S0VZ, ca.crt: Q0E=}
---
apiVersion: v1
kind: Secret
metadata: {name: sched-tls, namespace: kube-system}
data: {tls.crt: Q1JU, tls.key: S0VZ, unused: WA==}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: sched-config, namespace: kube-system}
data: {config.yaml: "kind: KubeSchedulerConfiguration\n"}
binaryData: {policy.bin: AAEC/w==}
"#;

fn docs<T: serde::de::DeserializeOwned>(yaml: &str, kind: &str) -> Vec<T> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some(kind))
        .map(|v| serde_yaml_ng::from_value(v).unwrap())
        .collect()
}
use serde::Deserialize;

fn source(kind: SourceKind) -> SourceInfo {
    SourceInfo {
        kind,
        location: "test".into(),
        revision: Some(7),
        integrity: None,
        sha256: None,
        size: None,
        read_at: "2026-01-01T00:00:00Z".into(),
    }
}

fn cp(workloads: &str, objects: &str) -> ControlPlane {
    ControlPlane {
        source: source(SourceKind::Snapshot),
        daemonsets: docs::<DaemonSet>(workloads, "DaemonSet"),
        deployments: docs::<Deployment>(workloads, "Deployment"),
        secrets: docs::<Secret>(objects, "Secret"),
        config_maps: docs::<ConfigMap>(objects, "ConfigMap"),
        kubeconfig: Some(b"apiVersion: v1\nkind: Config\n".to_vec()),
        warnings: vec![],
        unknown_fields: vec![],
    }
}

fn full() -> ControlPlane {
    cp(&format!("{APISERVER}\n---\n{SCHEDULER}"), OBJECTS)
}

fn pod(out: &AssetDir, parent: &str) -> Pod {
    let a = out
        .get(&format!("bootstrap-manifests/bootstrap-{parent}.yaml"))
        .unwrap();
    assert_eq!(a.mode, MODE_PUBLIC);
    serde_yaml_ng::from_slice(&a.bytes).unwrap()
}

fn report(out: &AssetDir) -> serde_json::Value {
    serde_json::from_slice(&out.get("kubeboot.json").unwrap().bytes).unwrap()
}

#[test]
fn apiserver_pod_is_a_clean_static_pod() {
    let out = render(&full(), &RenderOptions::default()).unwrap();
    let p = pod(&out, "kube-apiserver");
    let meta = &p.metadata;
    assert_eq!(meta.name.as_deref(), Some("bootstrap-kube-apiserver"));
    assert_eq!(meta.namespace.as_deref(), Some("kube-system"));
    let labels = meta.labels.clone().unwrap();
    assert_eq!(
        labels.get("kubeboot.io/bootstrap").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        labels.get("kubeboot.io/bootstrap-of").map(String::as_str),
        Some("kube-apiserver")
    );
    assert!(!labels.contains_key("k8s-app") && !labels.contains_key("tier"));
    let ann = meta.annotations.clone().unwrap();
    assert!(
        !ann.keys()
            .any(|k| k.starts_with("checkpointer.alpha.coreos.com/"))
    );
    assert!(!ann.contains_key("deprecated.daemonset.template.generation"));
    assert_eq!(ann.get("keep.example.com/x").map(String::as_str), Some("y"));
    assert_eq!(
        ann.get(ANNOTATION_PARENT).map(String::as_str),
        Some("DaemonSet/kube-system/kube-apiserver")
    );

    let s = p.spec.unwrap();
    assert_eq!(s.host_network, Some(true));
    assert_eq!(s.restart_policy.as_deref(), Some("Always"));
    assert_eq!(s.automount_service_account_token, Some(false));
    assert!(s.node_selector.is_none() && s.service_account_name.is_none() && s.affinity.is_none());
    assert!(
        s.security_context.is_none(),
        "emptied pod securityContext is dropped"
    );
    assert_eq!(s.tolerations.map(|t| t.len()), Some(1));
    let c = &s.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(
        (sc.run_as_user, sc.read_only_root_filesystem),
        (None, Some(true))
    );
    assert!(
        c.volume_mounts
            .iter()
            .flatten()
            .all(|m| m.name != KUBECONFIG_VOLUME),
        "apiserver needs no kubeconfig"
    );
    let v = s.volumes.unwrap();
    let hp = v[0].host_path.clone().unwrap();
    assert!(v[0].secret.is_none());
    assert_eq!(
        hp.path,
        "/etc/kubernetes/bootstrap-secrets/secrets/kube-apiserver"
    );
    assert_eq!(hp.type_.as_deref(), Some("Directory"));

    let key = out.get("tls/secrets/kube-apiserver/apiserver.key").unwrap();
    assert_eq!((key.bytes.as_slice(), key.mode), (&b"KEY"[..], 0o600));
    assert_eq!(out.get("auth/kubeconfig").unwrap().mode, MODE_SECRET);
}

#[test]
fn scheduler_volumes_items_modes_optional_projected_binary() {
    let out = render(&full(), &RenderOptions::default()).unwrap();
    let files: Vec<(&str, u32)> = out
        .files
        .iter()
        .filter(|(k, _)| k.starts_with("tls/"))
        .map(|(k, a)| (k.as_str(), a.mode))
        .collect();
    assert_eq!(
        files,
        [
            ("tls/config-maps/sched-config/config.yaml", 0o700),
            ("tls/config-maps/sched-config/policy.bin", 0o700),
            (
                "tls/projected/bootstrap-kube-scheduler/in-cluster/kubeconfig",
                0o600
            ),
            ("tls/secrets/kube-apiserver/apiserver.key", 0o600),
            ("tls/secrets/kube-apiserver/ca.crt", 0o600),
            ("tls/secrets/sched-tls/serving/tls.crt", 0o400),
            ("tls/secrets/sched-tls/serving/tls.key", 0o400),
        ]
    );
    assert_eq!(
        out.get("tls/config-maps/sched-config/policy.bin")
            .unwrap()
            .bytes,
        [0, 1, 2, 0xff]
    );

    let s = pod(&out, "kube-scheduler").spec.unwrap();
    let hp = |name: &str| {
        let v = s.volumes.iter().flatten().find(|v| v.name == name).unwrap();
        let h = v.host_path.clone().unwrap();
        (h.path, h.type_.unwrap())
    };
    assert_eq!(
        hp("extra"),
        (
            "/etc/kubernetes/bootstrap-secrets/secrets/absent".into(),
            "DirectoryOrCreate".into()
        )
    );
    assert_eq!(
        hp("in-cluster").0,
        "/etc/kubernetes/bootstrap-secrets/projected/bootstrap-kube-scheduler/in-cluster"
    );
    assert_eq!(
        hp(KUBECONFIG_VOLUME),
        (
            "/etc/kubernetes/bootstrap-secrets".into(),
            "Directory".into()
        )
    );

    // The existing --kubeconfig is rewritten, not duplicated; the sidecar is untouched.
    let sched = &s.containers[0];
    assert_eq!(
        sched.args.clone().unwrap(),
        ["--kubeconfig", "/kubeboot-bootstrap/kubeconfig", "--v=2"]
    );
    assert!(
        sched
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == KUBECONFIG_VOLUME && m.read_only == Some(true))
    );
    // A hostNetwork bootstrap pod declares no ports: any would become a hostPort and
    // get the self-hosted twin rejected by the kubelet (NodePorts).
    assert!(sched.ports.is_none(), "{:?}", sched.ports);
    assert!(s.containers[1].volume_mounts.is_none());
    assert!(s.affinity.is_none());

    let r = report(&out);
    let warnings = r["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("serviceAccountToken")),
        "{warnings:?}"
    );
    assert_eq!(r["kubeconfig"], "supplied");
    assert_eq!(
        r["components"][1]["bootstrap_manifest"],
        "bootstrap-manifests/bootstrap-kube-scheduler.yaml"
    );
    assert_eq!(r["files"], out.files.len());
}

#[test]
fn errors_name_the_object() {
    let no_secret = OBJECTS.replace("name: kube-apiserver, namespace", "name: other, namespace");
    let missing_key = OBJECTS.replace("tls.key: S0VZ", "other: S0VZ");
    let cases: Vec<(ControlPlane, &str)> = vec![
        (
            cp(APISERVER, &no_secret),
            r#"daemonset kube-system/kube-apiserver mounts secret "kube-apiserver" which does not exist"#,
        ),
        (
            cp(SCHEDULER, &missing_key),
            r#"deployment kube-system/kube-scheduler mounts key "tls.key" of secret "sched-tls" which does not exist"#,
        ),
        (
            cp(
                &SCHEDULER.replace("path: serving/tls.crt", "path: ../../etc/x"),
                OBJECTS,
            ),
            r#"deployment kube-system/kube-scheduler: item path "../../etc/x" is not a safe relative path (contains ..)"#,
        ),
        (
            cp(
                &SCHEDULER.replace(
                    "command: [sleep, infinity]",
                    "envFrom: [{secretRef: {name: s}}]",
                ),
                OBJECTS,
            ),
            r#"deployment kube-system/kube-scheduler: container "sidecar" envFrom reads secret "s", which a static bootstrap pod cannot use"#,
        ),
        (
            cp(
                &APISERVER.replace(
                    "k8s-app: kube-apiserver}, annotations",
                    "k8s-app: user-app}, annotations",
                ),
                OBJECTS,
            ),
            "nothing to recover in test: of its 1 DaemonSet(s) and 0 Deployment(s), none has label k8s-app (or component) = kube-apiserver, kube-controller-manager, kube-scheduler or etcd",
        ),
        (
            cp("", OBJECTS),
            "nothing to recover in test: it holds no DaemonSet and no Deployment (is it this cluster's etcd, read with its --etcd-prefix?)",
        ),
    ];
    for (cp, want) in cases {
        assert_eq!(
            render(&cp, &RenderOptions::default())
                .unwrap_err()
                .to_string(),
            want
        );
    }
}

#[test]
fn missing_kubeconfig_and_etcd_are_reported() {
    let etcd = APISERVER.replace(
        "name: kube-apiserver, namespace: kube-system, labels: {k8s-app: kube-apiserver}",
        "name: kube-etcd, namespace: kube-system, labels: {k8s-app: kube-etcd}",
    );
    let mut c = cp(&format!("{APISERVER}\n---\n{etcd}"), OBJECTS);
    c.kubeconfig = None;
    let out = render(&c, &RenderOptions::default()).unwrap();
    assert!(out.get("auth/kubeconfig").is_none());
    let r = report(&out);
    assert_eq!(r["kubeconfig"], KUBECONFIG_MISSING);
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("etcd-operator's etcd")
    );
    assert_eq!(r["components"].as_array().unwrap().len(), 1);
}

#[test]
fn deterministic_and_only_source_differs() {
    let a = render(&full(), &RenderOptions::default()).unwrap();
    let mut other = full();
    other.daemonsets.reverse();
    other.secrets.reverse();
    other.source = source(SourceKind::Etcd);
    let b = render(&other, &RenderOptions::default()).unwrap();
    assert_eq!(
        a.files.keys().collect::<Vec<_>>(),
        b.files.keys().collect::<Vec<_>>()
    );
    for (path, asset) in &a.files {
        if path != "kubeboot.json" {
            assert_eq!(asset, b.get(path).unwrap(), "{path}");
        }
    }
    let (mut ra, mut rb) = (report(&a), report(&b));
    assert_ne!(ra["source"], rb["source"]);
    ra["source"] = serde_json::Value::Null;
    rb["source"] = serde_json::Value::Null;
    assert_eq!(ra, rb);
    assert_eq!(a, render(&full(), &RenderOptions::default()).unwrap());
}

#[test]
fn options_are_validated() {
    for (dir, kc) in [
        ("relative", "/k/kubeconfig"),
        ("/s", "/kubeconfig"),
        ("/s/../x", "/k/c"),
        ("/", "/k/c"),
    ] {
        let opts = RenderOptions {
            secrets_host_dir: dir.into(),
            kubeconfig_host_path: kc.into(),
        };
        assert!(
            matches!(render(&full(), &opts), Err(RenderError::Options(_))),
            "{dir} {kc}"
        );
    }
    let opts = RenderOptions {
        secrets_host_dir: "/srv/b".into(),
        kubeconfig_host_path: "/srv/k/admin.conf".into(),
    };
    let out = render(&full(), &opts).unwrap();
    let s = pod(&out, "kube-scheduler").spec.unwrap();
    assert_eq!(
        s.containers[0].args.clone().unwrap()[1],
        "/kubeboot-bootstrap/admin.conf"
    );
}
