//! sanitize: metadata, spec edits, volume → hostPath + Materialize, idempotence.

use super::*;
use k8s_openapi::api::core::v1::Volume;

pub(super) const ROOT: &str = "/etc/kubernetes/checkpoint-secrets";

/// A self-hosted api-server pod as the api-server serves it.
pub(super) const APISERVER_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver-abcde
  generateName: kube-apiserver-
  namespace: kube-system
  uid: 0b9c2a6e-1111-2222-3333-444455556666
  resourceVersion: "4242"
  creationTimestamp: "2025-01-02T03:04:05Z"
  labels: {k8s-app: kube-apiserver, tier: control-plane, controller-revision-hash: 7d9f}
  annotations: {checkpointer.alpha.coreos.com/checkpoint: "true", note: "a \"quoted\"\nvalue"}
  ownerReferences:
  - {apiVersion: apps/v1, kind: DaemonSet, name: kube-apiserver, uid: ds-uid, controller: true, blockOwnerDeletion: true}
  managedFields:
  - {manager: kube-controller-manager, operation: Update, apiVersion: v1}
spec:
  nodeName: master-0
  serviceAccountName: kube-apiserver
  serviceAccount: kube-apiserver
  automountServiceAccountToken: true
  schedulerName: default-scheduler
  priority: 2000001000
  priorityClassName: system-node-critical
  preemptionPolicy: PreemptLowerPriority
  enableServiceLinks: true
  hostNetwork: true
  nodeSelector: {node-role.kubernetes.io/control-plane: ""}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchFields: [{key: metadata.name, operator: In, values: [master-0]}]
  tolerations:
  - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
  imagePullSecrets: [{name: registry}]
  securityContext: {runAsUser: 65534, fsGroup: 65534}
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.35.0
    imagePullPolicy: Always
    command: [kube-apiserver, --secure-port=6443]
    ports: [{name: https, containerPort: 6443, hostPort: 6443, protocol: TCP}]
    env:
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    volumeMounts:
    - {name: secrets, mountPath: /etc/kubernetes/secrets, readOnly: true}
    - {name: config, mountPath: /etc/kubernetes/config, readOnly: true}
    - {name: ssl-certs-host, mountPath: /etc/ssl/certs, readOnly: true}
    - {name: kube-api-access-x7k2p, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}
  volumes:
  - name: secrets
    secret:
      secretName: kube-apiserver
      defaultMode: 256
      items: [{key: apiserver.crt, path: tls/apiserver.crt}, {key: apiserver.key, path: tls/apiserver.key, mode: 384}]
  - name: config
    configMap: {name: kube-apiserver-config, optional: true}
  - name: ssl-certs-host
    hostPath: {path: /usr/share/ca-certificates, type: ""}
  - name: podinfo
    projected:
      sources:
      - downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: kube-api-access-x7k2p
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken: {expirationSeconds: 3607, path: token}
      - configMap:
          name: kube-root-ca.crt
          items: [{key: ca.crt, path: ca.crt}]
      - downwardAPI:
          items:
          - {path: namespace, fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}
          - {path: note, fieldRef: {fieldPath: "metadata.annotations['note']"}}
status:
  phase: Running
  podIP: 10.0.0.10
"#;

pub(super) fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).unwrap()
}

pub(super) fn apiserver() -> Pod {
    pod(APISERVER_POD)
}

pub(super) fn spec_of(p: &Pod) -> &PodSpec {
    p.spec.as_ref().unwrap()
}

pub(super) fn volume<'a>(p: &'a Pod, name: &str) -> &'a Volume {
    spec_of(p)
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .unwrap()
}

pub(super) fn edited(edit: impl FnOnce(&mut Pod)) -> Result<Checkpoint, SanitizeError> {
    let mut p = apiserver();
    edit(&mut p);
    sanitize(&p, ROOT)
}

#[test]
fn metadata_keeps_identity_and_labels_and_points_at_the_parent() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    let m = &c.pod.metadata;
    assert_eq!(m.name.as_deref(), Some("kube-apiserver-abcde"));
    assert_eq!(m.namespace.as_deref(), Some("kube-system"));
    assert_eq!(m.labels, apiserver().metadata.labels);
    assert_eq!(
        m.annotations,
        Some(BTreeMap::from([(
            ANNOTATION_CHECKPOINT_OF.to_string(),
            "kube-apiserver-abcde".to_string()
        )]))
    );
    let owners = m.owner_references.as_ref().unwrap();
    assert_eq!(owners.len(), 1);
    let o = &owners[0];
    assert_eq!(
        (o.api_version.as_str(), o.kind.as_str(), o.name.as_str()),
        ("v1", "Pod", "kube-apiserver-abcde")
    );
    assert_eq!(o.uid, "0b9c2a6e-1111-2222-3333-444455556666");
    assert_eq!(o.controller, Some(true));
    assert!(m.uid.is_none() && m.resource_version.is_none() && m.generate_name.is_none());
    assert!(m.creation_timestamp.is_none() && m.managed_fields.is_none());
    assert!(c.pod.status.is_none());
}

#[test]
fn scheduling_identity_and_admission_fields_are_cleared() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    let s = spec_of(&c.pod);
    assert!(
        s.node_name.is_none(),
        "the kubelet binds a static pod itself"
    );
    assert!(s.service_account_name.is_none() && s.service_account.is_none());
    assert!(s.automount_service_account_token.is_none());
    assert!(s.affinity.is_none(), "bootkube #1009");
    assert!(s.node_selector.is_none() && s.scheduler_name.is_none());
    assert!(s.priority.is_none() && s.preemption_policy.is_none());
    assert!(s.image_pull_secrets.is_none());
    assert_eq!(
        s.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(s.tolerations, spec_of(&apiserver()).tolerations);
    assert_eq!(s.host_network, Some(true));
    assert!(
        s.containers.iter().all(|c| c.ports.is_none()),
        "a hostNetwork checkpoint declares no host port, or the kubelet rejects its parent (NodePorts)"
    );
    assert_eq!(
        s.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(
        s.containers[0].command,
        spec_of(&apiserver()).containers[0].command
    );
}

#[test]
fn only_system_priority_classes_are_kept() {
    let c = edited(|p| p.spec.as_mut().unwrap().priority_class_name = Some("high".into()));
    assert!(spec_of(&c.unwrap().pod).priority_class_name.is_none());
    let c = edited(|p| {
        p.spec.as_mut().unwrap().priority_class_name = Some("system-cluster-critical".into())
    });
    assert_eq!(
        spec_of(&c.unwrap().pod).priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
}

#[test]
fn secret_volume_becomes_a_host_dir_with_its_items_and_modes() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    let dir = format!("{ROOT}/secrets/kube-system/kube-apiserver-abcde/secrets");
    let v = volume(&c.pod, "secrets");
    assert!(v.secret.is_none());
    let hp = v.host_path.as_ref().unwrap();
    assert_eq!(
        (hp.path.as_str(), hp.type_.as_deref()),
        (dir.as_str(), Some("Directory"))
    );
    assert_eq!(
        c.materialize[0],
        Materialize {
            volume: "secrets".into(),
            host_dir: dir,
            namespace: "kube-system".into(),
            owner: FileOwner {
                uid: Some(65534),
                gid: Some(65534)
            },
            content: Content::Secret(ObjectFiles {
                name: "kube-apiserver".into(),
                items: vec![
                    Item {
                        key: "apiserver.crt".into(),
                        path: "tls/apiserver.crt".into(),
                        mode: None
                    },
                    Item {
                        key: "apiserver.key".into(),
                        path: "tls/apiserver.key".into(),
                        mode: Some(0o600)
                    },
                ],
                default_mode: Some(0o400),
                optional: false,
            }),
        }
    );
}

#[test]
fn config_map_volume_keeps_optional_and_all_keys() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    let m = &c.materialize[1];
    assert_eq!(
        m.host_dir,
        format!("{ROOT}/configmaps/kube-system/kube-apiserver-abcde/config")
    );
    assert_eq!(
        m.content,
        Content::ConfigMap(ObjectFiles {
            name: "kube-apiserver-config".into(),
            items: vec![],
            default_mode: None,
            optional: true,
        })
    );
    assert_eq!(
        volume(&c.pod, "config").host_path.as_ref().unwrap().path,
        m.host_dir
    );
}

#[test]
fn service_account_volume_becomes_a_projected_dir_with_resolved_downward_values() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    assert_eq!(c.materialize.len(), 3, "secret, configMap, projected");
    let m = &c.materialize[2];
    assert_eq!(
        m.host_dir,
        format!("{ROOT}/projected/kube-system/kube-apiserver-abcde/kube-api-access-x7k2p")
    );
    let Content::Projected(sources) = &m.content else {
        panic!("{m:?}")
    };
    assert_eq!(
        sources[0],
        Projection::ServiceAccountToken {
            service_account: "kube-apiserver".into(),
            audience: None,
            expiration_seconds: Some(3607),
            path: "token".into(),
            default_mode: Some(420),
        }
    );
    assert_eq!(
        sources[1],
        Projection::ConfigMap(ObjectFiles {
            name: "kube-root-ca.crt".into(),
            items: vec![Item {
                key: "ca.crt".into(),
                path: "ca.crt".into(),
                mode: None
            }],
            default_mode: Some(420),
            optional: false,
        })
    );
    let Projection::DownwardApi { files, .. } = &sources[2] else {
        panic!("{sources:?}")
    };
    assert_eq!(files[0].content, "kube-system");
    assert_eq!(files[1].content, "a \"quoted\"\nvalue");
}

#[test]
fn service_account_defaults_to_default() {
    let c = edited(|p| {
        let s = p.spec.as_mut().unwrap();
        s.service_account_name = None;
        s.service_account = None;
    })
    .unwrap();
    let Content::Projected(sources) = &c.materialize[2].content else {
        panic!()
    };
    assert!(
        matches!(&sources[0], Projection::ServiceAccountToken { service_account, .. } if service_account == "default")
    );
}

#[test]
fn local_volumes_and_downward_only_projections_stay() {
    let c = sanitize(&apiserver(), ROOT).unwrap();
    assert_eq!(
        volume(&c.pod, "ssl-certs-host"),
        volume(&apiserver(), "ssl-certs-host")
    );
    assert_eq!(volume(&c.pod, "podinfo"), volume(&apiserver(), "podinfo"));
}

#[test]
fn downward_fields_format_like_the_kubelet() {
    let p = apiserver();
    assert_eq!(
        crate::checkpoint::downward::field(&p, "metadata.labels").unwrap(),
        "controller-revision-hash=\"7d9f\"\nk8s-app=\"kube-apiserver\"\ntier=\"control-plane\""
    );
    assert_eq!(
        crate::checkpoint::downward::field(&p, "metadata.annotations['note']").unwrap(),
        "a \"quoted\"\nvalue"
    );
    assert_eq!(
        crate::checkpoint::downward::field(&p, "metadata.labels['absent']").unwrap(),
        ""
    );
    assert!(crate::checkpoint::downward::field(&p, "status.podIP").is_none());
    assert!(crate::checkpoint::downward::field(&p, "metadata.labels['x'").is_none());
    let ann = crate::checkpoint::downward::field(&p, "metadata.annotations").unwrap();
    assert!(ann.ends_with("note=\"a \\\"quoted\\\"\\nvalue\""), "{ann}");
}

#[test]
fn file_owner_is_the_container_user_and_two_users_are_an_error() {
    let c = edited(|p| {
        let s = p.spec.as_mut().unwrap();
        s.security_context = None;
    })
    .unwrap();
    assert_eq!(c.materialize[0].owner, FileOwner::default());
    let err = edited(|p| {
        let s = p.spec.as_mut().unwrap();
        let mut init = s.containers[0].clone();
        init.name = "init".into();
        init.security_context = Some(Default::default());
        init.security_context.as_mut().unwrap().run_as_user = Some(0);
        s.init_containers = Some(vec![init]);
    })
    .unwrap_err();
    assert!(err.to_string().contains("different users"), "{err}");
    // Only volumes that become host dirs need one owner.
    let c = edited(|p| {
        let s = p.spec.as_mut().unwrap();
        let mut init = s.containers[0].clone();
        init.name = "init".into();
        init.security_context = Some(Default::default());
        init.security_context.as_mut().unwrap().run_as_user = Some(0);
        init.volume_mounts
            .as_mut()
            .unwrap()
            .retain(|m| m.name == "ssl-certs-host");
        s.init_containers = Some(vec![init]);
    });
    assert!(c.is_ok(), "{c:?}");
}

#[test]
fn sanitizing_a_checkpoint_returns_it_unchanged() {
    // bootkube #764.
    let c = sanitize(&apiserver(), ROOT).unwrap();
    let again = sanitize(&c.pod, ROOT).unwrap();
    assert_eq!(again.pod, c.pod);
    assert!(again.materialize.is_empty());
    assert!(is_checkpoint(&c.pod) && !is_parent(&c.pod));
}
