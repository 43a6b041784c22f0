//! Builders of the objects `observe` reads, shared by the unit tests of `start` and of
//! `ensure`, which judge the same pods, nodes and leases.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::observe::Required;

pub fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub fn req(name: &str) -> Required {
    Required::parse(&format!("kube-system/{name}")).unwrap()
}

pub fn node(name: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

pub fn lease(node: &str, renew: &str) -> Lease {
    serde_json::from_value(json!({
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"renewTime": renew}
    }))
    .unwrap()
}
