//! The objects of `kubeboot render`: every manifest passes the independent Kubernetes
//! 1.35 schema check; every file a component's flags name exists in the volume that
//! provides it (a Secret or ConfigMap in the self-hosted pods, a `tls/` or `auth/` file
//! in the bootstrap pods); the objects have the shape `render`, `start` and the
//! checkpointer rely on; and the output is a pure function of options and PKI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Secret, Volume};
use kubeboot::assets;
use kubeboot::model::AssetDir;
use kubeboot::newcluster::{Images, NewClusterOptions, generate_pki, render_new, render_with_pki};
use kubeboot_testkit::validate;
use serde::Deserialize;

fn https_etcd() -> NewClusterOptions {
    NewClusterOptions {
        etcd_servers: vec!["https://127.0.0.1:2379".into()],
        ..NewClusterOptions::default()
    }
}

/// https etcd, and an api-server on a privileged port.
fn port_443() -> NewClusterOptions {
    NewClusterOptions {
        api_servers: vec!["https://k8s.example.com".into()],
        ..https_etcd()
    }
}

/// The documents of one YAML file, as JSON values.
fn docs(a: &AssetDir, path: &str) -> Vec<serde_json::Value> {
    let text = String::from_utf8(a.get(path).unwrap().bytes.clone()).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect()
}

/// The self-hosted objects, by kind and name.
#[derive(Default)]
struct Objects {
    /// (file, kind, name) in file order.
    order: Vec<(String, String, String)>,
    secrets: BTreeMap<String, Secret>,
    config_maps: BTreeMap<String, ConfigMap>,
    daemonsets: BTreeMap<String, DaemonSet>,
    deployments: BTreeMap<String, Deployment>,
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn objects(a: &AssetDir) -> Objects {
    let mut o = Objects::default();
    for path in a.files.keys().filter(|k| k.starts_with("manifests/")) {
        for v in docs(a, path) {
            let kind = v["kind"].as_str().unwrap().to_string();
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            o.order.push((path.clone(), kind.clone(), name.clone()));
            match kind.as_str() {
                "Secret" => _ = o.secrets.insert(name, from(v)),
                "ConfigMap" => _ = o.config_maps.insert(name, from(v)),
                "DaemonSet" => _ = o.daemonsets.insert(name, from(v)),
                "Deployment" => _ = o.deployments.insert(name, from(v)),
                _ => {}
            }
        }
    }
    o
}

impl Objects {
    /// Every workload's pod spec, with its owner.
    fn pods(&self) -> Vec<(String, PodSpec)> {
        let ds = self.daemonsets.iter().map(|(n, d)| {
            let spec = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
            (format!("daemonset {n}"), spec)
        });
        let dep = self.deployments.iter().map(|(n, d)| {
            let spec = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
            (format!("deployment {n}"), spec)
        });
        ds.chain(dep).collect()
    }
}

/// The volume and the path inside it that `path` of the containers of `spec` reads.
fn resolve<'a>(owner: &str, spec: &'a PodSpec, path: &str) -> (&'a Volume, String) {
    let mut best: Option<(&str, &str)> = None;
    for c in &spec.containers {
        for m in c.volume_mounts.iter().flatten() {
            let under = path
                .strip_prefix(m.mount_path.as_str())
                .is_some_and(|r| r.starts_with('/'));
            if under && best.is_none_or(|(mp, _)| mp.len() < m.mount_path.len()) {
                best = Some((&m.mount_path, &m.name));
            }
        }
    }
    let (mount_path, volume) = best.unwrap_or_else(|| panic!("{owner}: {path} is in no volume"));
    let v = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == volume)
        .unwrap_or_else(|| panic!("{owner}: no volume {volume}"));
    (v, path[mount_path.len() + 1..].to_string())
}

/// Every `--flag=/absolute/path` of the containers of `spec`.
fn path_flags(spec: &PodSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in &spec.containers {
        for arg in c.command.iter().flatten().chain(c.args.iter().flatten()) {
            if let Some((flag, value)) = arg.split_once('=')
                && flag.starts_with("--")
                && value.starts_with('/')
            {
                out.push((flag.to_string(), value.to_string()));
            }
        }
    }
    out
}

/// Checks that `path` in `spec` is a key of the Secret or ConfigMap mounted there.
fn assert_in_object(o: &Objects, owner: &str, spec: &PodSpec, what: &str, path: &str) {
    let (v, key) = resolve(owner, spec, path);
    let found = if let Some(s) = &v.secret {
        let name = s.secret_name.as_deref().unwrap();
        let secret = o
            .secrets
            .get(name)
            .unwrap_or_else(|| panic!("{owner}: no secret {name}"));
        secret.data.as_ref().unwrap().contains_key(&key)
    } else if let Some(c) = &v.config_map {
        let cm = o
            .config_maps
            .get(&c.name)
            .unwrap_or_else(|| panic!("{owner}: no configmap {}", c.name));
        cm.data.as_ref().unwrap().contains_key(&key)
    } else {
        panic!("{owner}: {what} {path} is not in a Secret or ConfigMap volume");
    };
    assert!(
        found,
        "{owner}: {what} {path}: volume {:?} has no key {key:?}",
        v.name
    );
}

#[test]
fn every_manifest_passes_kubernetes_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, opts) in [
        ("http-etcd", NewClusterOptions::default()),
        ("https-etcd-port-443", port_443()),
    ] {
        let a = render_new(&opts).unwrap();
        let dir = tmp.path().join(name);
        assets::write(&dir, &a, false).unwrap();
        files.extend(
            a.files
                .keys()
                .filter(|k| k.starts_with("manifests/") || k.starts_with("bootstrap-manifests/"))
                .map(|k| dir.join(k)),
        );
    }
    assert_eq!(files.len(), 2 * 10, "7 manifests and 3 bootstrap pods each");
    validate::assert_valid(&files);
}

#[test]
fn self_hosted_flags_name_keys_of_the_objects_they_mount() {
    let a = render_new(&https_etcd()).unwrap();
    let o = objects(&a);
    let mut checked = 0;
    for (owner, spec) in o.pods() {
        for (flag, path) in path_flags(&spec) {
            // The checkpointer's dirs: the host's own view (`--host-*`, in no mount) and
            // paths in hostPath mounts are not keys of an object.
            if flag.starts_with("--host-") || resolve(&owner, &spec, &path).0.host_path.is_some() {
                continue;
            }
            assert_in_object(&o, &owner, &spec, &flag, &path);
            checked += 1;
        }
        // Pods that read the in-cluster kubeconfig need the token it names.
        let uses_token = spec.volumes.iter().flatten().any(|v| {
            v.config_map
                .as_ref()
                .is_some_and(|c| c.name == "kubeconfig-in-cluster")
        });
        if uses_token {
            assert_ne!(spec.automount_service_account_token, Some(false), "{owner}");
            assert!(spec.service_account_name.is_some(), "{owner}");
        }
    }
    assert_eq!(checked, 18, "flags naming files");
    // kube-proxy's config file names a kubeconfig, which it must mount too.
    let config = &o.config_maps["kube-proxy"].data.as_ref().unwrap()["config.yaml"];
    let config: serde_json::Value = serde_yaml_ng::from_str(config).unwrap();
    let kubeconfig = config["clientConnection"]["kubeconfig"].as_str().unwrap();
    let (_, spec) = o
        .pods()
        .into_iter()
        .find(|(n, _)| n == "daemonset kube-proxy")
        .unwrap();
    assert_in_object(
        &o,
        "kube-proxy",
        &spec,
        "clientConnection.kubeconfig",
        kubeconfig,
    );
    assert_eq!(config["clusterCIDR"], "10.2.0.0/16");
}

#[test]
fn bootstrap_flags_name_files_of_the_asset_dir() {
    let a = render_new(&https_etcd()).unwrap();
    let mut checked = 0;
    for path in a
        .files
        .keys()
        .filter(|k| k.starts_with("bootstrap-manifests/"))
    {
        let pod: Pod = serde_yaml_ng::from_slice(&a.get(path).unwrap().bytes).unwrap();
        let spec = pod.spec.unwrap();
        for (flag, file) in path_flags(&spec) {
            let (v, rel) = resolve(path, &spec, &file);
            let host = format!("{}/{rel}", v.host_path.as_ref().unwrap().path);
            let inside = host
                .strip_prefix("/etc/kubernetes/bootstrap-secrets/")
                .unwrap();
            let asset = match inside {
                "kubeconfig" => "auth/kubeconfig".to_string(),
                other => format!("tls/{other}"),
            };
            assert!(
                a.get(&asset).is_some(),
                "{path}: {flag}={file} → {asset} missing"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked, 16,
        "api-server 10, controller-manager 5, scheduler 1"
    );
}

#[test]
fn objects_have_the_shape_start_and_the_checkpointer_rely_on() {
    let a = render_new(&NewClusterOptions::default()).unwrap();
    let o = objects(&a);
    let first = o.order.first().unwrap();
    assert_eq!(
        (first.1.as_str(), first.2.as_str()),
        ("Namespace", "kube-system")
    );
    let mut last_workload_file = String::new();
    for (file, kind, name) in &o.order {
        if kind == "DaemonSet" || kind == "Deployment" {
            last_workload_file = file.clone();
        } else {
            assert_ne!(
                &last_workload_file, file,
                "{kind} {name} comes after the workload in {file}"
            );
        }
    }
    for app in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "pod-checkpointer",
    ] {
        let (meta, template) = match o.daemonsets.get(app) {
            Some(d) => (&d.metadata, &d.spec.as_ref().unwrap().template),
            None => {
                let d = &o.deployments[app];
                (&d.metadata, &d.spec.as_ref().unwrap().template)
            }
        };
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["tier"], "control-plane", "{app}");
        assert_eq!(labels["k8s-app"], app);
        assert_eq!(meta.namespace.as_deref(), Some("kube-system"));
        let spec = template.spec.as_ref().unwrap();
        let selector = spec.node_selector.as_ref().unwrap();
        assert_eq!(
            selector["node-role.kubernetes.io/control-plane"], "",
            "{app}"
        );
        let tolerations = spec.tolerations.as_ref().unwrap();
        assert!(
            tolerations
                .iter()
                .any(|t| t.key.as_deref() == Some("node-role.kubernetes.io/control-plane"))
        );
        let checkpointed = template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("checkpointer.alpha.coreos.com/checkpoint"));
        let want = matches!(app, "kube-apiserver" | "pod-checkpointer")
            .then_some(&"true".to_string())
            .cloned();
        assert_eq!(checkpointed.cloned(), want, "{app}");
    }
    let cp = o.daemonsets["pod-checkpointer"]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    assert_eq!(cp.host_network, Some(true));
    let c = &cp.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(Images::default().pod_checkpointer.as_str())
    );
    assert_eq!(
        &c.command.as_ref().unwrap()[..2],
        ["kubeboot", "checkpoint"]
    );
    let env: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(env, ["NODE_NAME", "POD_NAME", "POD_NAMESPACE", "HOST_IP"]);
    let proxy = o.daemonsets["kube-proxy"]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    assert!(
        proxy.node_selector.is_none(),
        "kube-proxy runs on every node"
    );
    assert!(
        proxy
            .tolerations
            .unwrap()
            .iter()
            .any(|t| t.key.is_none() && t.operator.as_deref() == Some("Exists"))
    );
}

#[test]
fn same_options_and_pki_give_identical_bytes() {
    let opts = https_etcd();
    let now: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    let pki = generate_pki(&opts, now).unwrap();
    let one = render_with_pki(&opts, &pki).unwrap();
    assert_eq!(render_with_pki(&opts, &pki).unwrap(), one);
    // Another PKI changes exactly the files that carry keys, certs or the kubeconfig.
    let other = render_with_pki(&opts, &generate_pki(&opts, now).unwrap()).unwrap();
    assert_eq!(
        one.files.keys().collect::<Vec<_>>(),
        other.files.keys().collect::<Vec<_>>()
    );
    let differ: Vec<&String> = one
        .files
        .keys()
        .filter(|k| one.get(k) != other.get(k))
        .collect();
    for k in &differ {
        assert!(
            k.starts_with("tls/")
                || k.as_str() == "auth/kubeconfig"
                || k.as_str() == "manifests/kube-apiserver.yaml"
                || k.as_str() == "manifests/kube-controller-manager.yaml",
            "{k} differs between two PKIs"
        );
    }
    assert!(differ.len() > 20, "{differ:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&one.get("kubeboot.json").unwrap().bytes).unwrap();
    assert_eq!(report["source"]["read_at"], "2026-03-01T12:00:00Z");
}

#[test]
fn kubeboot_json_says_rendered_with_no_warnings() {
    let a = render_new(&NewClusterOptions::default()).unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&a.get("kubeboot.json").unwrap().bytes).unwrap();
    assert_eq!(r["source"]["kind"], "rendered");
    assert_eq!(
        r["warnings"],
        serde_json::json!([]),
        "render had nothing to drop or fix"
    );
    assert_eq!(r["files"], a.files.len());
    assert_eq!(r["components"].as_array().unwrap().len(), 3);
    assert_eq!(r["new_cluster"]["service_cidr"], "10.3.0.0/24");
    assert_eq!(r["new_cluster"]["self_hosted_etcd"], false);
}

#[test]
fn images_can_be_overridden_by_name() {
    let mut opts = NewClusterOptions::default();
    opts.images
        .set("kube-apiserver=reg.example/apiserver:v9")
        .unwrap();
    opts.images
        .set("pod-checkpointer=reg.example/kubeboot:dev")
        .unwrap();
    let a = render_new(&opts).unwrap();
    let o = objects(&a);
    let image = |ds: &str| {
        o.daemonsets[ds]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };
    assert_eq!(image("kube-apiserver"), "reg.example/apiserver:v9");
    assert_eq!(image("pod-checkpointer"), "reg.example/kubeboot:dev");
    assert_eq!(image("kube-proxy"), "registry.k8s.io/kube-proxy:v1.35.0");
    for bad in [
        "kube-dns=x:1",
        "kube-apiserver",
        "kube-apiserver=",
        "kube-apiserver=a b",
    ] {
        let err = opts.images.set(bad).unwrap_err();
        assert!(
            err.is_usage() && err.to_string().starts_with("--images"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn bad_options_are_usage_errors_naming_the_flag() {
    type Edit = fn(&mut NewClusterOptions);
    let cases: [(Edit, &str); 10] = [
        (
            |o| o.api_servers = vec!["http://10.0.0.1:6443".into()],
            "--api-servers \"http://10.0.0.1:6443\": http://10.0.0.1:6443: the api-server serves https only",
        ),
        (
            |o| o.api_servers = vec![],
            "--api-servers \"\": give at least one URL",
        ),
        (
            |o| o.api_servers = vec!["https://a b".into()],
            "--api-servers",
        ),
        (
            |o| o.service_cidr = "10.3.0.1/24".into(),
            "did you mean 10.3.0.0/24",
        ),
        (|o| o.service_cidr = "10.0.0.0/8".into(), "--service-cidr"),
        (
            |o| o.pod_cidr = "10.3.0.0/16".into(),
            "overlaps --service-cidr 10.3.0.0/24",
        ),
        (
            |o| o.pod_cidr = "fd00::/56".into(),
            "not the same IP family",
        ),
        (|o| o.pod_cidr = "10.2.0.0/26".into(), "--pod-cidr"),
        (
            |o| o.etcd_servers = vec!["https://a:2379".into(), "http://b:2379".into()],
            "mixes http and https",
        ),
        (
            |o| {
                o.self_hosted_etcd = true;
                o.api_servers = vec![
                    "https://10.0.0.1:6443".into(),
                    "https://10.0.0.2:6443".into(),
                ];
            },
            "a multi-member self-hosted etcd is not supported",
        ),
    ];
    for (edit, needle) in cases {
        let mut opts = NewClusterOptions::default();
        edit(&mut opts);
        let err = render_new(&opts).unwrap_err();
        assert!(err.is_usage(), "{needle}: {err}");
        assert!(err.to_string().contains(needle), "{err:?} lacks {needle:?}");
    }
}

#[test]
fn a_privileged_port_makes_the_apiserver_root_with_one_capability() {
    let spec = |opts: &NewClusterOptions| {
        let o = objects(&render_new(opts).unwrap());
        o.daemonsets["kube-apiserver"]
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap()
    };
    let low = spec(&port_443());
    let c = &low.containers[0];
    assert!(c.command.iter().flatten().any(|a| a == "--secure-port=443"));
    // A hostNetwork pod declares no ports: the api-server would default each to a host port,
    // and the kubelet would reject the self-hosted pod while its checkpoint holds it.
    assert_eq!(c.ports, None);
    let sc = low.security_context.as_ref().unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_non_root), (Some(0), Some(false)));
    let caps = c
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap();
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_BIND_SERVICE".to_string()][..])
    );
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));

    let high = spec(&NewClusterOptions::default());
    let sc = high.security_context.as_ref().unwrap();
    assert_eq!(
        (sc.run_as_user, sc.run_as_non_root),
        (Some(65534), Some(true))
    );
    let caps = high.containers[0]
        .security_context
        .as_ref()
        .unwrap()
        .capabilities
        .as_ref()
        .unwrap();
    assert!(caps.add.is_none());
}

/// Every component serving on a host port beside its bootstrap twin or checkpoint sets
/// `--permit-port-sharing`, in the self-hosted workload and in its bootstrap pod alike:
/// SO_REUSEPORT shares a port only when every socket on it set it.
#[test]
fn host_port_components_permit_port_sharing_on_both_sides() {
    let a = render_new(&https_etcd()).unwrap();
    let o = objects(&a);
    let shares = |spec: &PodSpec| {
        spec.containers[0]
            .command
            .iter()
            .flatten()
            .any(|f| f == "--permit-port-sharing=true")
    };
    let pods = o.pods();
    for name in [
        "daemonset kube-apiserver",
        "deployment kube-scheduler",
        "deployment kube-controller-manager",
    ] {
        let (_, spec) = pods.iter().find(|(n, _)| n == name).unwrap();
        assert!(shares(spec), "{name}");
    }
    let mut bootstrap = 0;
    for path in a
        .files
        .keys()
        .filter(|k| k.starts_with("bootstrap-manifests/"))
        .filter(|k| !k.contains("etcd"))
    {
        let pod: Pod = serde_yaml_ng::from_slice(&a.get(path).unwrap().bytes).unwrap();
        assert!(shares(&pod.spec.unwrap()), "{path}");
        bootstrap += 1;
    }
    assert_eq!(bootstrap, 3);
}
