//! The files a new cluster adds to what `render` writes: `manifests/`, the PKI under
//! `tls/`, the kubelets' kubeconfigs under `auth/kubelets/`, and the `new_cluster` part of `kubeboot.json`.

use serde_json::json;

use super::kubeconfig;
use super::net::Endpoint;
use super::objects::{Component, Object};
use super::options::Plan;
use super::{NewClusterError, NewClusterOptions, Pki};
use crate::model::{AssetDir, MODE_PUBLIC, MODE_SECRET};

/// Adds `manifests/` and the PKI files to what `render` wrote; a path both write is
/// an error, never a silent overwrite.
pub(super) fn add_files(
    out: &mut AssetDir,
    components: &[Component],
    pki: &Pki,
    server: &str,
) -> Result<(), NewClusterError> {
    for c in components {
        let (yaml, secret) = manifest(c)?;
        let mode = if secret { MODE_SECRET } else { MODE_PUBLIC };
        insert_new(out, format!("manifests/{}", c.file), yaml, mode)?;
    }
    for (path, pem) in pki_files(pki) {
        insert_new(out, format!("tls/{path}"), pem, MODE_SECRET)?;
    }
    for (node, cert) in &pki.kubelets {
        let kubeconfig = kubeconfig::kubelet(server, &pki.ca.cert_pem, node, cert)?;
        insert_new(
            out,
            format!("auth/kubelets/{node}.kubeconfig"),
            kubeconfig,
            MODE_SECRET,
        )?;
    }
    Ok(())
}

/// A component as multi-document YAML, and whether it holds a Secret.
fn manifest(c: &Component) -> Result<(String, bool), NewClusterError> {
    let mut docs = Vec::with_capacity(c.objects.len());
    for object in &c.objects {
        docs.push(serde_yaml_ng::to_string(object).map_err(|source| {
            NewClusterError::Serialize {
                what: format!("manifests/{}", c.file),
                source,
            }
        })?);
    }
    let secret = c.objects.iter().any(|o| matches!(o, Object::Secret(_)));
    Ok((docs.join("---\n"), secret))
}

/// The PKI files under `tls/`, for the operator (the pods read their Secrets).
fn pki_files(pki: &Pki) -> Vec<(&'static str, &str)> {
    let mut files = vec![
        ("ca.crt", pki.ca.cert_pem.as_str()),
        ("ca.key", &pki.ca.key_pem),
        ("apiserver.crt", &pki.apiserver.cert_pem),
        ("apiserver.key", &pki.apiserver.key_pem),
        ("kubelet-client.crt", &pki.kubelet_client.cert_pem),
        ("kubelet-client.key", &pki.kubelet_client.key_pem),
        ("admin.crt", &pki.admin.cert_pem),
        ("admin.key", &pki.admin.key_pem),
        ("service-account.key", &pki.service_account_key_pem),
        ("service-account.pub", &pki.service_account_pub_pem),
    ];
    if let Some(etcd) = &pki.etcd {
        files.extend([
            ("etcd/ca.crt", etcd.ca.cert_pem.as_str()),
            ("etcd/ca.key", &etcd.ca.key_pem),
            ("etcd/server.crt", &etcd.server.cert_pem),
            ("etcd/server.key", &etcd.server.key_pem),
            ("etcd/peer.crt", &etcd.peer.cert_pem),
            ("etcd/peer.key", &etcd.peer.key_pem),
            ("etcd/client.crt", &etcd.client.cert_pem),
            ("etcd/client.key", &etcd.client.key_pem),
        ]);
    }
    files
}

fn insert_new(
    out: &mut AssetDir,
    path: String,
    bytes: impl Into<Vec<u8>>,
    mode: u32,
) -> Result<(), NewClusterError> {
    if out.get(&path).is_some() {
        return Err(NewClusterError::Duplicate(path));
    }
    out.insert(path, bytes, mode);
    Ok(())
}

/// Brings `kubeboot.json` up to date: the file count includes what was added after
/// `render`, and `new_cluster` records the options.
pub(super) fn finish_report(
    out: &mut AssetDir,
    plan: &Plan,
    opts: &NewClusterOptions,
) -> Result<(), NewClusterError> {
    let path = "kubeboot.json";
    let mut report: serde_json::Value = match out.get(path) {
        Some(a) => serde_json::from_slice(&a.bytes).map_err(NewClusterError::Report)?,
        None => json!({}),
    };
    // Every file of the asset dir, this report included (what `render` prints).
    let files = out.files.len() + usize::from(out.get(path).is_none());
    if let Some(map) = report.as_object_mut() {
        map.insert("files".into(), json!(files));
        let urls = |l: &[Endpoint]| l.iter().map(ToString::to_string).collect::<Vec<_>>();
        let i = &plan.images;
        map.insert(
            "new_cluster".into(),
            json!({
                "api_servers": urls(&plan.api_servers),
                "etcd_servers": urls(&plan.etcd_servers),
                "self_hosted_etcd": opts.self_hosted_etcd,
                "pod_cidr": plan.pod_cidr.to_string(),
                "service_cidr": plan.service_cidr.to_string(),
                "node_names": plan.node_names,
                "images": {
                    "kube-apiserver": i.kube_apiserver,
                    "kube-controller-manager": i.kube_controller_manager,
                    "kube-scheduler": i.kube_scheduler,
                    "kube-proxy": i.kube_proxy,
                    "pod-checkpointer": i.pod_checkpointer,
                },
            }),
        );
        if opts.self_hosted_etcd
            && let Some(images) = map
                .get_mut("new_cluster")
                .and_then(|n| n.get_mut("images"))
                .and_then(|v| v.as_object_mut())
        {
            images.insert("etcd".into(), json!(i.etcd));
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&report).map_err(NewClusterError::Report)?;
    bytes.push(b'\n');
    out.insert(path, bytes, MODE_PUBLIC);
    Ok(())
}
