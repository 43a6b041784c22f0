//! The restore of a self-hosted etcd: tool per image version, argv, `restore.json`
//! path resolution, and the control planes that cannot be restored.

use super::*;
use crate::model::{ControlPlane, SourceInfo, SourceKind};
use crate::render::{render, render_with_backup};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Secret;

const ETCD_DS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: etcd, namespace: kube-system, labels: {k8s-app: etcd, tier: control-plane}}
spec:
  selector: {matchLabels: {k8s-app: etcd}}
  template:
    metadata: {labels: {k8s-app: etcd}}
    spec:
      containers:
      - name: etcd
        image: registry.k8s.io/etcd:3.4.13-0
        command: [etcd, --name=$(NODE_NAME), --data-dir=/var/lib/etcd/data,
                  --initial-cluster=$(NODE_NAME)=https://$(POD_IP):2380,
                  --initial-advertise-peer-urls=https://$(POD_IP):2380]
        env:
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: ETCDCTL_API, value: "2"}
        securityContext: {runAsUser: 0}
        volumeMounts:
        - {name: data, mountPath: /var/lib/etcd, subPath: member0}
        - {name: tls, mountPath: /etc/etcd/tls, readOnly: true}
      volumes:
      - {name: data, hostPath: {path: /srv/etcd, type: DirectoryOrCreate}}
      - {name: tls, secret: {secretName: etcd-tls}}
"#;

const APISERVER_DS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-apiserver, namespace: kube-system, labels: {k8s-app: kube-apiserver}}
spec:
  selector: {matchLabels: {k8s-app: kube-apiserver}}
  template:
    metadata: {labels: {k8s-app: kube-apiserver}}
    spec:
      containers:
      - name: apiserver
        image: registry.k8s.io/kube-apiserver:v1.35.0
        command: [kube-apiserver, "--etcd-servers=https://10.0.0.1:2379,https://127.0.0.1:2379",
                  --etcd-cafile=/etc/k/etcd/ca.crt, --etcd-certfile=/etc/k/etcd/client.crt]
        args: [--etcd-keyfile, /etc/k/host/client.key]
        volumeMounts:
        - {name: etcd-client, mountPath: /etc/k/etcd}
        - {name: host, mountPath: /etc/k/host}
      volumes:
      - name: etcd-client
        secret:
          secretName: kube-apiserver
          items: [{key: etcd-ca, path: ca.crt}, {key: etcd-cert, path: client.crt}]
      - {name: host, hostPath: {path: /etc/kubernetes/etcd}}
"#;

const SECRETS: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: kube-apiserver, namespace: kube-system}
data: {etcd-ca: Q0E=, etcd-cert: Q1JU}
---
apiVersion: v1
kind: Secret
metadata: {name: etcd-tls, namespace: kube-system}
data: {server.crt: Q1JU}
"#;

fn docs<T: serde::de::DeserializeOwned>(yaml: &str) -> Vec<T> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| serde_yaml_ng::from_value(serde_yaml_ng::Value::deserialize(d).unwrap()).unwrap())
        .collect()
}

fn cp(daemonsets: &[&str]) -> ControlPlane {
    ControlPlane {
        source: SourceInfo {
            kind: SourceKind::Snapshot,
            location: "test".into(),
            revision: Some(9),
            integrity: None,
            sha256: None,
            size: None,
            read_at: "2026-01-01T00:00:00Z".into(),
        },
        daemonsets: daemonsets
            .iter()
            .flat_map(|y| docs::<DaemonSet>(y))
            .collect(),
        deployments: vec![],
        secrets: docs::<Secret>(SECRETS),
        config_maps: vec![],
        kubeconfig: None,
        warnings: vec![],
        unknown_fields: vec![],
    }
}

fn backup(has_trailer: bool) -> EtcdBackup {
    EtcdBackup {
        bytes: prost::bytes::Bytes::from_static(b"snapshot bytes"),
        revision: 42,
        has_trailer,
        sha256: None,
    }
}

fn etcd_pod(out: &AssetDir) -> Pod {
    serde_yaml_ng::from_slice(
        &out.get("bootstrap-manifests/bootstrap-etcd.yaml")
            .unwrap()
            .bytes,
    )
    .unwrap()
}

#[test]
fn backup_gives_init_container_and_restore_json() {
    let out = render_with_backup(
        &cp(&[ETCD_DS, APISERVER_DS]),
        &RenderOptions::default(),
        Some(&backup(false)),
    )
    .unwrap();
    let snap = out.get(SNAPSHOT_ASSET).unwrap();
    assert_eq!(
        (snap.bytes.as_slice(), snap.mode),
        (&b"snapshot bytes"[..], 0o600)
    );
    let json = out.get(RESTORE_ASSET).unwrap();
    assert_eq!(json.mode, 0o600);
    let json: serde_json::Value = serde_json::from_slice(&json.bytes).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "snapshot": "etcd/snapshot.db",
            "sha256": hex::encode(Sha256::digest(b"snapshot bytes")),
            "revision": 42,
            "data_dir": "/srv/etcd/member0/data",
            "etcd_servers": ["https://10.0.0.1:2379", "https://127.0.0.1:2379"],
            "client_ca": "tls/secrets/kube-apiserver/ca.crt",
            "client_cert": "tls/secrets/kube-apiserver/client.crt",
            "client_key": null,
            "revision_bumped": false,
        })
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.get("kubeboot.json").unwrap().bytes).unwrap();
    assert!(
        report["warnings"]
            .to_string()
            .contains("--etcd-keyfile /etc/k/host/client.key is not a file of the asset dir"),
        "{report}"
    );

    let spec = etcd_pod(&out).spec.unwrap();
    let init = spec.init_containers.as_ref().unwrap().last().unwrap();
    assert_eq!(init.name, RESTORE_CONTAINER);
    assert_eq!(init.image.as_deref(), Some("registry.k8s.io/etcd:3.4.13-0"));
    assert_eq!(
        init.command.as_ref().unwrap(),
        &[
            "etcdctl",
            "snapshot",
            "restore",
            "/kubeboot-restore/snapshot.db",
            "--data-dir",
            "/var/lib/etcd/data",
            "--name",
            "$(NODE_NAME)",
            "--initial-cluster",
            "$(NODE_NAME)=https://$(POD_IP):2380",
            "--initial-advertise-peer-urls",
            "https://$(POD_IP):2380",
            "--skip-hash-check",
        ]
    );
    let env: Vec<(String, Option<String>)> = init
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert_eq!(
        env,
        [
            ("NODE_NAME".into(), None),
            ("ETCDCTL_API".into(), Some("3".into()))
        ]
    );
    let mounts: Vec<(&str, &str, Option<&str>, Option<bool>)> = init
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            (
                m.name.as_str(),
                m.mount_path.as_str(),
                m.sub_path.as_deref(),
                m.read_only,
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("data", "/var/lib/etcd", Some("member0"), None),
            ("kubeboot-restore", "/kubeboot-restore", None, Some(true)),
        ]
    );
    let vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == RESTORE_CONTAINER)
        .unwrap();
    let hp = vol.host_path.as_ref().unwrap();
    assert_eq!(hp.path, "/etc/kubernetes/bootstrap-secrets/etcd-restore");
    assert_eq!(hp.type_.as_deref(), Some("Directory"));
}

#[test]
fn no_backup_or_no_etcd_means_no_restore() {
    let plain = render(&cp(&[ETCD_DS, APISERVER_DS]), &RenderOptions::default()).unwrap();
    assert!(plain.get(SNAPSHOT_ASSET).is_none());
    assert!(etcd_pod(&plain).spec.unwrap().init_containers.is_none());
    let no_etcd = render_with_backup(
        &cp(&[APISERVER_DS]),
        &RenderOptions::default(),
        Some(&backup(true)),
    )
    .unwrap();
    assert!(no_etcd.files.keys().all(|k| !k.starts_with("etcd/")));
    assert_eq!(
        no_etcd,
        render(&cp(&[APISERVER_DS]), &RenderOptions::default()).unwrap()
    );
}

#[test]
fn plain_http_etcd_has_no_client_files() {
    let http = APISERVER_DS.replace(
        "https://10.0.0.1:2379,https://127.0.0.1:2379",
        "http://127.0.0.1:2379",
    );
    let out = render_with_backup(
        &cp(&[ETCD_DS, &http]),
        &RenderOptions::default(),
        Some(&backup(true)),
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&out.get(RESTORE_ASSET).unwrap().bytes).unwrap();
    assert_eq!(
        json["etcd_servers"],
        serde_json::json!(["http://127.0.0.1:2379"])
    );
    assert!(
        json["client_ca"].is_null()
            && json["client_cert"].is_null()
            && json["client_key"].is_null()
    );
    let init = etcd_pod(&out).spec.unwrap().init_containers.unwrap();
    assert!(
        !init[0]
            .command
            .as_ref()
            .unwrap()
            .contains(&"--skip-hash-check".to_string())
    );
}

#[test]
fn etcds_that_cannot_be_restored_are_errors() {
    let cases = [
        (
            ETCD_DS.replace(" --data-dir=/var/lib/etcd/data,", ""),
            "has no --data-dir",
        ),
        (
            ETCD_DS.replace(
                "--data-dir=/var/lib/etcd/data",
                "--data-dir=/var/lib/etcd/$(NODE_NAME)",
            ),
            "not a plain absolute path",
        ),
        (
            ETCD_DS.replace(
                "hostPath: {path: /srv/etcd, type: DirectoryOrCreate}",
                "emptyDir: {}",
            ),
            "not a hostPath",
        ),
        (
            ETCD_DS.replace("--data-dir=/var/lib/etcd/data", "--data-dir=/var/lib/etcd/"),
            "etcdctl (image \"registry.k8s.io/etcd:3.4.13-0\", etcd before 3.5) cannot restore into an existing directory",
        ),
        (
            ETCD_DS.replace("--data-dir=/var/lib/etcd/data", "--data-dir=/tmp/etcd"),
            "is in no volume",
        ),
        (
            format!(
                "{ETCD_DS}\n---\n{}",
                ETCD_DS.replace("name: etcd, namespace", "name: etcd2, namespace")
            ),
            "is also a self-hosted etcd",
        ),
    ];
    for (etcd, needle) in cases {
        let err = render_with_backup(
            &cp(&[&etcd, APISERVER_DS]),
            &RenderOptions::default(),
            Some(&backup(true)),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        assert!(err.starts_with("daemonset kube-system/etcd"), "{err}");
    }
}
