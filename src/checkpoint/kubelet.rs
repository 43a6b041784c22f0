//! What the kubelet runs here, from its `/pods` endpoint: the checkpointer's second
//! opinion on R, used when the container runtime's CRI socket does not answer
//! (`runtime.rs` says how the two combine).
//!
//! A parent counts as running while the kubelet lists it and it has not terminated
//! (phase not Succeeded or Failed, no deletion under way), whatever its containers do: a
//! self-hosted api-server pod that crash-loops, or waits, on the port its checkpoint
//! holds is listed, so its checkpoint is retired and the port handed back. That is
//! bootkube's "a READY sandbox counts" rule, with the same caveat: a parent stuck before
//! its first start (an image that cannot be pulled) also retires its checkpoint.
//!
//! Who is asked, and with what:
//! - the secure port (10250, `--kubelet-url`, https only) with the kubeconfig's
//!   credentials, and only after the kubelet's serving certificate has been verified
//!   against a CA (`--kubelet-ca-file`, else the kubeconfig's cluster CA; with neither the
//!   client is not built). bootkube turned verification off and sent its token anyway:
//!   10250 is not a privileged port, so any local user who binds it while the kubelet
//!   restarts would have received the service-account token, and its `/pods` answer
//!   would have decided what is activated. The TLS handshake fails before a request is
//!   written, so an unverified listener sees no token, no path and no header;
//! - the read-only port (10255) only when the operator names it
//!   (`--kubelet-read-only-url`), with no credentials at all: plain HTTP proves nothing
//!   about who answers, and kubelets have it off by default (`readOnlyPort: 0`).

use std::collections::BTreeSet;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::sanitize;
use super::state::PodKey;
use crate::source::error_chain;

/// A client for the kubelet's two ports (see the module doc for who gets credentials).
#[derive(Clone)]
pub struct Kubelet {
    secure: Option<(kube::Client, String)>,
    read_only: Option<(kube::Client, String)>,
}

fn timeouts(config: &mut kube::Config, timeout: Duration) {
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
}

/// The CA bundle at `path` (PEM), as DER certificates.
fn read_ca(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let certs: Vec<Vec<u8>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--kubelet-ca-file {}: {e}", path.display()))?
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--kubelet-ca-file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--kubelet-ca-file {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

impl Kubelet {
    /// Clients for `secure_url` (https; credentials from `kubeconfig`, sent only to a
    /// listener whose certificate `ca_file`, else the kubeconfig's CA, signed) and
    /// `read_only_url` (no credentials); `None` turns a port off.
    pub async fn new(
        kubeconfig: &Path,
        secure_url: Option<&str>,
        ca_file: Option<&Path>,
        read_only_url: Option<&str>,
        timeout: Duration,
    ) -> Result<Kubelet, String> {
        let uri = |u: &str| {
            u.parse::<http::Uri>()
                .map_err(|e| format!("kubelet URL {u:?}: {e}"))
        };
        let secure = match secure_url {
            Some(url) => {
                let parsed = uri(url)?;
                if parsed.scheme_str() != Some("https") {
                    return Err(format!(
                        "--kubelet-url {url:?}: the kubeconfig's credentials go only over https to a kubelet that proves who it is; use --kubelet-read-only-url for plain HTTP"
                    ));
                }
                let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| {
                    format!("kubeconfig {}: {}", kubeconfig.display(), error_chain(&e))
                })?;
                let mut config =
                    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                        .await
                        .map_err(|e| {
                            format!("kubeconfig {}: {}", kubeconfig.display(), error_chain(&e))
                        })?;
                config.cluster_url = parsed;
                config.accept_invalid_certs = false;
                config.tls_server_name = None;
                config.proxy_url = None;
                match ca_file {
                    Some(path) => config.root_cert = Some(read_ca(path)?),
                    None if config.root_cert.as_ref().is_some_and(|c| !c.is_empty()) => {}
                    None => {
                        return Err(format!(
                            "no CA to verify the kubelet's serving certificate: kubeconfig {} names none; give --kubelet-ca-file (or --kubelet-url= to turn the secure port off)",
                            kubeconfig.display()
                        ));
                    }
                }
                timeouts(&mut config, timeout);
                let client = kube::Client::try_from(config)
                    .map_err(|e| format!("kubelet {url}: {}", error_chain(&e)))?;
                Some((client, url.trim_end_matches('/').to_string()))
            }
            None => None,
        };
        let read_only = match read_only_url {
            Some(url) => {
                // Plain http: no trust store is loaded, so a host without
                // ca-certificates can still read it (docs/testing.md, "What the machines
                // found").
                let mut config = crate::kubeclient::anonymous_config(uri(url)?);
                timeouts(&mut config, timeout);
                let client = kube::Client::try_from(config)
                    .map_err(|e| format!("kubelet {url}: {}", error_chain(&e)))?;
                Some((client, url.trim_end_matches('/').to_string()))
            }
            None => None,
        };
        Ok(Kubelet { secure, read_only })
    }

    /// The kubelet's pods, from the first port that answers; the error says why each failed.
    pub async fn pods(&self) -> Result<Vec<Pod>, String> {
        let mut why = Vec::new();
        for (client, url) in self.secure.iter().chain(self.read_only.iter()) {
            let req = http::Request::get("/pods").body(Vec::new());
            let result = match req {
                Ok(req) => client
                    .request_text(req)
                    .await
                    .map_err(|e| error_chain(&e))
                    .and_then(|text| parse_pod_list(&text)),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(pods) => return Ok(pods),
                Err(e) => why.push(format!("{url}/pods: {e}")),
            }
        }
        if why.is_empty() {
            return Err("no kubelet URL is configured".into());
        }
        Err(format!("kubelet unreachable: {}", why.join("; ")))
    }
}

/// Parses the kubelet's `/pods` body, a `v1.PodList`.
pub fn parse_pod_list(text: &str) -> Result<Vec<Pod>, String> {
    #[derive(serde::Deserialize)]
    struct PodList {
        kind: Option<String>,
        #[serde(default)]
        items: Option<Vec<Pod>>,
    }
    let list: PodList = serde_json::from_str(text).map_err(|e| format!("not a pod list: {e}"))?;
    if list.kind.as_deref().is_some_and(|k| k != "PodList") {
        return Err(format!(
            "not a pod list: kind {:?}",
            list.kind.unwrap_or_default()
        ));
    }
    Ok(list.items.unwrap_or_default())
}

/// The parents among `pods` that count as running (see the module doc).
#[must_use]
pub fn running_parents(pods: &[Pod]) -> BTreeSet<PodKey> {
    pods.iter()
        .filter(|p| sanitize::is_parent(p) && p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(PodKey::of)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[
      {"metadata":{"name":"api-a","namespace":"kube-system",
         "annotations":{"checkpointer.alpha.coreos.com/checkpoint":"true"}},
       "status":{"phase":"Pending","containerStatuses":[{"name":"c","image":"i","imageID":"",
         "ready":false,"restartCount":0,
         "state":{"waiting":{"reason":"HostPortConflict"}}}]}},
      {"metadata":{"name":"crashing","namespace":"kube-system",
         "annotations":{"checkpointer.alpha.coreos.com/checkpoint":"true"}},
       "status":{"phase":"Running"}},
      {"metadata":{"name":"done","namespace":"default",
         "annotations":{"checkpointer.alpha.coreos.com/checkpoint":"true"}},
       "status":{"phase":"Succeeded"}},
      {"metadata":{"name":"going","namespace":"default","deletionTimestamp":"2025-01-01T00:00:00Z",
         "annotations":{"checkpointer.alpha.coreos.com/checkpoint":"true"}},
       "status":{"phase":"Running"}},
      {"metadata":{"name":"api-a-node1","namespace":"kube-system",
         "annotations":{"checkpointer.alpha.coreos.com/checkpoint":"true",
           "checkpointer.alpha.coreos.com/checkpoint-of":"api-a",
           "kubernetes.io/config.source":"file"}},
       "status":{"phase":"Running"}},
      {"metadata":{"name":"plain","namespace":"default"},"status":{"phase":"Running"}}
    ]}"#;

    #[test]
    fn a_listed_parent_that_has_not_terminated_is_running() {
        let pods = parse_pod_list(LIST).unwrap();
        assert_eq!(pods.len(), 6);
        let running = running_parents(&pods);
        let want: BTreeSet<PodKey> = [
            PodKey::new("kube-system", "api-a"),
            PodKey::new("kube-system", "crashing"),
        ]
        .into();
        assert_eq!(running, want);
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(parse_pod_list("404 page not found").is_err());
        assert!(parse_pod_list(r#"{"kind":"Status","items":[]}"#).is_err());
        assert!(parse_pod_list(r#"{"kind":"PodList","items":[{"metadata":5}]}"#).is_err());
        assert_eq!(parse_pod_list(r#"{"kind":"PodList"}"#), Ok(Vec::new()));
    }
}
