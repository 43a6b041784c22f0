//! The kubeconfigs of a new cluster.
//!
//! - `auth/kubeconfig`: the admin's, with the CA and the admin client cert embedded so
//!   the file stands alone (it is a secret: 0600). `start` and the bootstrap
//!   controller-manager and scheduler use it, so it names the first `--api-servers`
//!   URL, which must reach the bootstrap api-server.
//! - `auth/kubelets/<node>.kubeconfig`: a kubelet's, as `system:node:<node>` in
//!   `system:nodes`, the identity the Node authorizer and NodeRestriction judge: the
//!   admin's cert would make every kubelet cluster-admin, so one compromised master
//!   could rewrite the whole cluster. Same server URL as the admin's.
//! - the `kubeconfig-in-cluster` ConfigMap: for self-hosted pods that authenticate
//!   with their service-account token. It names the same URL rather than the
//!   `kubernetes` service IP, because kube-proxy (which makes the service IP work)
//!   and the controller-manager (which publishes the CA the token mount carries) must
//!   reach the api-server before the service IP does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::NewClusterError;
use super::pki::{CertKey, NODE_USER_PREFIX};

/// Name of the cluster, user and context entries.
const CLUSTER: &str = "kubeboot";
const ADMIN: &str = "kubeboot-admin";

/// Where a pod's service-account token and CA are mounted.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn yaml(value: &serde_json::Value) -> Result<String, NewClusterError> {
    serde_yaml_ng::to_string(value).map_err(|source| NewClusterError::Serialize {
        what: "a kubeconfig".into(),
        source,
    })
}

/// The admin kubeconfig.
pub fn admin(server: &str, ca_pem: &str, admin: &CertKey) -> Result<String, NewClusterError> {
    with_cert(server, ca_pem, ADMIN, admin)
}

/// A kubelet's kubeconfig, as `system:node:<node>`.
pub fn kubelet(
    server: &str,
    ca_pem: &str,
    node: &str,
    cert: &CertKey,
) -> Result<String, NewClusterError> {
    with_cert(server, ca_pem, &format!("{NODE_USER_PREFIX}{node}"), cert)
}

/// A kubeconfig with the CA and a client cert embedded, its user named `user`.
fn with_cert(
    server: &str,
    ca_pem: &str,
    user: &str,
    cert: &CertKey,
) -> Result<String, NewClusterError> {
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    yaml(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER,
            "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
        }],
        "users": [{
            "name": user,
            "user": {
                "client-certificate-data": b64(&cert.cert_pem),
                "client-key-data": b64(&cert.key_pem),
            },
        }],
        "contexts": [{
            "name": format!("{user}@{CLUSTER}"),
            "context": {"cluster": CLUSTER, "user": user},
        }],
        "current-context": format!("{user}@{CLUSTER}"),
    }))
}

/// The service-account kubeconfig of the `kubeconfig-in-cluster` ConfigMap.
pub fn in_cluster(server: &str) -> Result<String, NewClusterError> {
    yaml(&json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER,
            "cluster": {"server": server, "certificate-authority": format!("{SA_DIR}/ca.crt")},
        }],
        "users": [{
            "name": "service-account",
            "user": {"tokenFile": format!("{SA_DIR}/token")},
        }],
        "contexts": [{
            "name": CLUSTER,
            "context": {"cluster": CLUSTER, "user": "service-account"},
        }],
        "current-context": CLUSTER,
    }))
}
