//! Round trips of hand-written objects of the kinds a self-hosted control plane uses: what
//! `encode` writes, `decode` must read back to the same JSON, and Go's zero-value rules must hold
//! (a pointer `replicas: 0` survives, a non-pointer `hostNetwork: false` is not printed).

use kubeboot::codec;
use serde_json::{Value, json};

/// encode → decode must give the object back unchanged (the objects below are written as the
/// api-server prints them), and a second round must be byte-identical.
fn assert_round_trip(object: &Value) {
    let bytes = codec::encode(object).unwrap_or_else(|e| panic!("encode: {e}"));
    let decoded = codec::decode("/registry/test", &bytes).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(&decoded.object, object);
    assert!(decoded.unknown_fields.is_empty());
    assert_eq!(codec::encode(&decoded.object).expect("re-encode"), bytes);
}

fn meta(name: &str, namespace: &str) -> Value {
    json!({"name": name, "namespace": namespace, "uid": "0b5c8a3e-1111-4c1e-9e0e-000000000001",
           "resourceVersion": "42", "creationTimestamp": "2024-05-01T10:00:00Z",
           "labels": {"k8s-app": name, "tier": "control-plane"}})
}

#[test]
fn codec_secret_with_data() {
    assert_round_trip(&json!({
        "kind": "Secret", "apiVersion": "v1", "metadata": meta("kube-apiserver", "kube-system"),
        "data": {"apiserver.crt": "LS0tLS1CRUdJTg==", "empty": "", "apiserver.key": "AAEC/w=="},
        "type": "Opaque"
    }));
}

#[test]
fn codec_configmap_with_binary_data() {
    assert_round_trip(&json!({
        "kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("kubeconfig-in-cluster", "kube-system"),
        "data": {"kubeconfig": "apiVersion: v1\nkind: Config\n"},
        "binaryData": {"blob": "3q2+7w=="}
    }));
}

fn pod_spec() -> Value {
    json!({
        "volumes": [
            {"name": "secrets", "secret": {"secretName": "kube-apiserver", "items": [{"key": "apiserver.crt", "path": "tls.crt", "mode": 256}], "defaultMode": 420}},
            {"name": "config", "configMap": {"name": "kube-proxy", "defaultMode": 384}},
            {"name": "ssl-host", "hostPath": {"path": "/etc/ssl/certs", "type": "DirectoryOrCreate"}},
            {"name": "token", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ], "defaultMode": 420}}
        ],
        "containers": [{
            "name": "kube-apiserver",
            "image": "registry.k8s.io/kube-apiserver:v1.35.0",
            "command": ["/usr/local/bin/kube-apiserver", "--secure-port=6443"],
            "ports": [{"name": "https", "containerPort": 6443, "protocol": "TCP"}],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "bootstrap", "key": "token", "optional": true}}},
                {"name": "MODE", "value": "fast"}
            ],
            "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}},
            "volumeMounts": [{"name": "secrets", "readOnly": true, "mountPath": "/etc/kubernetes/secrets"}],
            "livenessProbe": {"httpGet": {"path": "/livez", "port": 6443, "host": "127.0.0.1", "scheme": "HTTPS"},
                              "initialDelaySeconds": 15, "timeoutSeconds": 15, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 8},
            "readinessProbe": {"tcpSocket": {"port": "https"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}, "privileged": false, "runAsUser": 0, "runAsNonRoot": false, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}
        }],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
        "serviceAccountName": "kube-apiserver",
        "serviceAccount": "kube-apiserver",
        "hostNetwork": true,
        "securityContext": {"runAsUser": 65534, "runAsNonRoot": true, "fsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ],
        "priorityClassName": "system-cluster-critical",
        "priority": 2000000000
    })
}

#[test]
fn codec_daemonset_with_volumes_probes_and_tolerations() {
    assert_round_trip(&json!({
        "kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": meta("kube-apiserver", "kube-system"),
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "kube-apiserver"}},
            "template": {"metadata": {"labels": {"k8s-app": "kube-apiserver"}}, "spec": pod_spec()},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10
        },
        "status": {"currentNumberScheduled": 1, "numberMisscheduled": 0, "desiredNumberScheduled": 1, "numberReady": 1,
                   "observedGeneration": 3, "updatedNumberScheduled": 1, "numberAvailable": 1}
    }));
}

fn deployment(replicas: u32) -> Value {
    json!({
        "kind": "Deployment", "apiVersion": "apps/v1", "metadata": meta("kube-controller-manager", "kube-system"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"k8s-app": "kube-controller-manager"}},
            "template": {"metadata": {"labels": {"k8s-app": "kube-controller-manager"}}, "spec": pod_spec()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        },
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2024-05-01T10:00:00Z",
                                   "lastTransitionTime": "2024-05-01T10:00:00Z", "reason": "MinimumReplicasAvailable",
                                   "message": "Deployment has minimum availability."}]}
    })
}

#[test]
fn codec_deployment_round_trips() {
    assert_round_trip(&deployment(2));
}

#[test]
fn codec_deployment_keeps_zero_replicas_and_drops_false_host_network() {
    // Regression pin for Go's pointer rule: `replicas` is *int32, so 0 is printed;
    // `hostNetwork` is a plain bool with omitempty, so false is not.
    let mut object = deployment(0);
    object["spec"]["template"]["spec"]["hostNetwork"] = json!(false);
    let bytes = codec::encode(&object).expect("encode");
    let decoded = codec::decode("k", &bytes).expect("decode").object;
    assert_eq!(decoded["spec"]["replicas"], json!(0));
    assert!(
        decoded["spec"]["template"]["spec"]
            .get("hostNetwork")
            .is_none()
    );
    // And with no replicas at all, none appears.
    object["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let decoded = codec::decode("k", &codec::encode(&object).expect("encode"))
        .expect("decode")
        .object;
    assert!(decoded["spec"].get("replicas").is_none());
}

#[test]
fn codec_namespace() {
    assert_round_trip(&json!({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "kube-system", "uid": "u", "resourceVersion": "4", "creationTimestamp": "2024-05-01T10:00:00Z",
                     "labels": {"kubernetes.io/metadata.name": "kube-system"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    }));
}

#[test]
fn codec_service_with_int_or_string_target_port() {
    assert_round_trip(&json!({
        "kind": "Service", "apiVersion": "v1", "metadata": meta("kube-apiserver", "kube-system"),
        "spec": {
            "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443},
                      {"name": "metrics", "protocol": "TCP", "port": 8443, "targetPort": "metrics"}],
            "selector": {"k8s-app": "kube-apiserver"},
            "clusterIP": "10.3.0.1", "clusterIPs": ["10.3.0.1"], "type": "ClusterIP",
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster"
        },
        "status": {"loadBalancer": {}}
    }));
}

#[test]
fn codec_node_with_conditions() {
    assert_round_trip(&json!({
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": "master-0", "uid": "n", "resourceVersion": "9", "creationTimestamp": "2024-05-01T10:00:00Z",
                     "labels": {"node-role.kubernetes.io/control-plane": ""},
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": "10.2.0.0/24", "podCIDRs": ["10.2.0.0/24"],
                 "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "2", "memory": "4025836Ki", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "3923436Ki", "pods": "110"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "2024-05-01T10:05:00Z",
                 "lastTransitionTime": "2024-05-01T10:00:00Z", "reason": "KubeletHasSufficientMemory", "message": "ok"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-05-01T10:05:00Z",
                 "lastTransitionTime": "2024-05-01T10:01:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.10"}, {"type": "Hostname", "address": "master-0"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1.0", "osImage": "Debian",
                         "containerRuntimeVersion": "containerd://1.7.0", "kubeletVersion": "v1.35.0", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64"}
        }
    }));
}

#[test]
fn codec_lease_has_micro_time() {
    assert_round_trip(&json!({
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": meta("kube-scheduler", "kube-system"),
        "spec": {"holderIdentity": "master-0_1234", "leaseDurationSeconds": 15,
                 "acquireTime": "2024-05-01T10:00:00.123456Z", "renewTime": "2024-05-01T10:05:00.000000Z", "leaseTransitions": 3}
    }));
}

#[test]
fn codec_custom_resources_are_stored_as_go_json() {
    let object = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                        "metadata": {"name": "w", "namespace": "default"}, "spec": {"z": 1, "a": "<&>"}});
    let bytes = codec::encode(&object).expect("encode");
    assert_eq!(
        String::from_utf8(bytes.clone()).expect("UTF-8"),
        "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":\"w\",\"namespace\":\"default\"},\
         \"spec\":{\"a\":\"\\u003c\\u0026\\u003e\",\"z\":1}}\n"
    );
    let decoded = codec::decode("/registry/example.com/widgets/default/w", &bytes).expect("decode");
    assert_eq!(decoded.format, codec::Format::Json);
    assert_eq!(decoded.object, object);
}

#[test]
fn codec_encode_rejects_unknown_fields_and_kinds() {
    let mut object = deployment(1);
    object["spec"]["replicaz"] = json!(1);
    let err = codec::encode(&object)
        .expect_err("unknown field")
        .to_string();
    assert!(
        err.contains("spec.replicaz") && err.contains("kube-system/kube-controller-manager"),
        "{err}"
    );
    let err = codec::encode(&json!({"apiVersion": "apps/v1", "kind": "Deploymnt"}))
        .expect_err("typo kind");
    assert!(err.to_string().contains("Deploymnt"), "{err}");
}
