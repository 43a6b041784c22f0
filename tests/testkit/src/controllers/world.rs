//! The executor side of the controllers: one consistent look at the cluster per cycle
//! ([`World::list`]) and the writes the pure controllers ask for ([`Action`]).
//!
//! Lists are read dependents first (pods, then ReplicaSets, then their owners), so an
//! owner missing from a cycle's view really was deleted before its dependents were
//! read: the garbage collector can trust an absence. Every write is idempotent or
//! guarded (deletes carry a uid precondition), and "already done" answers (404 on
//! delete, 409 AlreadyExists on create) count as success.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, Resource};
use serde_json::{Value, json};

/// Everything the controllers look at, listed in one cycle.
#[derive(Debug, Default, Clone)]
pub struct World {
    pub pods: Vec<Pod>,
    pub replica_sets: Vec<ReplicaSet>,
    pub deployments: Vec<Deployment>,
    pub daemon_sets: Vec<DaemonSet>,
    pub nodes: Vec<Node>,
    /// The kubelets' heartbeats, in `kube-node-lease`.
    pub node_leases: Vec<Lease>,
}

async fn all<K>(client: &Client) -> Result<Vec<K>>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {}", K::plural(&())))?;
    Ok(list.items)
}

impl World {
    /// Lists dependents before owners (see the module docs).
    pub async fn list(client: &Client) -> Result<World> {
        let pods = all(client).await?;
        let replica_sets = all(client).await?;
        let deployments = all(client).await?;
        let daemon_sets = all(client).await?;
        let nodes = all(client).await?;
        let node_leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
            .list(&ListParams::default())
            .await
            .context("listing leases")?
            .items;
        Ok(World {
            pods,
            replica_sets,
            deployments,
            daemon_sets,
            nodes,
            node_leases,
        })
    }
}

/// Drops what Go's `omitempty` drops (zero numbers, `false`, empty strings, lists and
/// maps, nulls), recursively.
fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::Number(n) if n.as_f64() == Some(0.0) => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(Value::Array(
            a.into_iter()
                .map(|x| prune(x).unwrap_or(Value::Null))
                .collect(),
        )),
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        v => Some(v),
    }
}

/// Whether a status must be written: `new` differs from `old` once zero values are
/// ignored. A 0 the controller writes is stored as absent (the fields are `omitempty`
/// in the Go types, and the api-server stores protobuf), so a plain comparison would
/// rewrite every settled status every cycle.
pub fn status_changed<T: serde::Serialize>(old: &T, new: &T) -> bool {
    let v = |x: &T| prune(serde_json::to_value(x).unwrap_or_default());
    v(old) != v(new)
}

/// Whose status subresource an [`Action::Status`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    DaemonSet,
    Deployment,
    ReplicaSet,
}

/// One write.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreatePod(Box<Pod>),
    DeletePod {
        namespace: String,
        name: String,
        uid: String,
        why: &'static str,
    },
    CreateReplicaSet(Box<ReplicaSet>),
    ScaleReplicaSet {
        namespace: String,
        name: String,
        replicas: i32,
    },
    DeleteReplicaSet {
        namespace: String,
        name: String,
        uid: String,
    },
    /// A Node's status, replaced (guarded by its resourceVersion).
    NodeStatus(Box<Node>),
    /// A Node's `spec.taints`, replaced by a merge patch.
    NodeTaints {
        name: String,
        taints: Vec<Taint>,
    },
    /// A pod's status, replaced (guarded by its resourceVersion).
    PodStatus(Box<Pod>),
    /// A merge patch `{"status": ...}` on the status subresource.
    Status {
        owner: Owner,
        namespace: String,
        name: String,
        status: Value,
    },
}

fn ok_if(r: kube::Result<()>, code: u16) -> kube::Result<()> {
    match r {
        Err(kube::Error::Api(s)) if s.code == code => Ok(()),
        r => r,
    }
}

fn delete_params(uid: &str) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// Reads the object's status and writes it back with `status`'s fields replaced (a
/// conflict is retried next cycle).
async fn update_status<K>(api: Api<K>, name: &str, status: Value) -> kube::Result<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let current = api.get(name).await?;
    let mut v = serde_json::to_value(&current).map_err(kube::Error::SerdeError)?;
    if !v["status"].is_object() {
        v["status"] = json!({});
    }
    if let (Some(old), Value::Object(new)) = (v["status"].as_object_mut(), status) {
        for (k, val) in new {
            if val.is_null() {
                old.remove(&k);
            } else {
                old.insert(k, val);
            }
        }
    }
    let updated: K = serde_json::from_value(v).map_err(kube::Error::SerdeError)?;
    api.replace_status(name, &PostParams::default(), &updated)
        .await
        .map(|_| ())
}

/// Performs one action; logs creations and deletions (one line each).
pub async fn execute(client: &Client, component: &str, action: Action) -> Result<()> {
    let c = client.clone();
    match action {
        Action::CreatePod(pod) => {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(c, &ns);
            let made = api.create(&PostParams::default(), &pod).await?;
            let node = super::pods::node_name(&made);
            let on = if node.is_empty() {
                String::new()
            } else {
                format!(" on {node}")
            };
            crate::note!(
                "{component}: created pod {ns}/{}{on}",
                made.metadata.name.unwrap_or_default()
            );
        }
        Action::DeletePod {
            namespace,
            name,
            uid,
            why,
        } => {
            let api: Api<Pod> = Api::namespaced(c, &namespace);
            let r = api.delete(&name, &delete_params(&uid)).await.map(|_| ());
            ok_if(ok_if(r, 404), 409)?;
            crate::note!("{component}: deleted pod {namespace}/{name} ({why})");
        }
        Action::CreateReplicaSet(rs) => {
            let ns = rs.metadata.namespace.clone().unwrap_or_default();
            let api: Api<ReplicaSet> = Api::namespaced(c, &ns);
            ok_if(
                api.create(&PostParams::default(), &rs).await.map(|_| ()),
                409,
            )?;
            crate::note!(
                "{component}: created replicaset {ns}/{}",
                rs.metadata.name.unwrap_or_default()
            );
        }
        Action::ScaleReplicaSet {
            namespace,
            name,
            replicas,
        } => {
            let api: Api<ReplicaSet> = Api::namespaced(c, &namespace);
            let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
            api.patch(&name, &PatchParams::default(), &patch).await?;
            crate::note!("{component}: scaled replicaset {namespace}/{name} to {replicas}");
        }
        Action::DeleteReplicaSet {
            namespace,
            name,
            uid,
        } => {
            let api: Api<ReplicaSet> = Api::namespaced(c, &namespace);
            let r = api.delete(&name, &delete_params(&uid)).await.map(|_| ());
            ok_if(ok_if(r, 404), 409)?;
            crate::note!("{component}: deleted replicaset {namespace}/{name} (owner gone)");
        }
        Action::NodeStatus(node) => {
            let name = node.metadata.name.clone().unwrap_or_default();
            Api::<Node>::all(c)
                .replace_status(&name, &PostParams::default(), &*node)
                .await?;
            crate::note!("{component}: node {name}: Ready is {}", ready_of(&node));
        }
        Action::NodeTaints { name, taints } => {
            let patch = Patch::Merge(json!({"spec": {"taints": taints}}));
            Api::<Node>::all(c)
                .patch(&name, &PatchParams::default(), &patch)
                .await?;
            let keys: Vec<String> = taints
                .iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect();
            crate::note!("{component}: node {name}: taints [{}]", keys.join(", "));
        }
        Action::PodStatus(pod) => {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let r = Api::<Pod>::namespaced(c, &ns)
                .replace_status(&name, &PostParams::default(), &*pod)
                .await
                .map(|_| ());
            ok_if(r, 404)?;
            crate::note!("{component}: pod {ns}/{name}: Ready is False (node not ready)");
        }
        Action::Status {
            owner,
            namespace,
            name,
            status,
        } => {
            // The controllers' roles grant `update` on `<kind>/status`, not `patch`
            // (upstream's controllers call UpdateStatus), so the status is written back.
            let r = match owner {
                Owner::DaemonSet => {
                    update_status(Api::<DaemonSet>::namespaced(c, &namespace), &name, status).await
                }
                Owner::Deployment => {
                    update_status(Api::<Deployment>::namespaced(c, &namespace), &name, status).await
                }
                Owner::ReplicaSet => {
                    update_status(Api::<ReplicaSet>::namespaced(c, &namespace), &name, status).await
                }
            };
            ok_if(r, 404)?;
        }
    }
    Ok(())
}

fn ready_of(n: &Node) -> &str {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or("absent", |c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;

    #[test]
    fn zero_and_absent_are_the_same_status() {
        let written = DaemonSetStatus {
            desired_number_scheduled: 2,
            number_available: Some(0),
            number_unavailable: Some(2),
            updated_number_scheduled: Some(0),
            ..DaemonSetStatus::default()
        };
        let read_back = DaemonSetStatus {
            number_available: None,
            updated_number_scheduled: None,
            ..written.clone()
        };
        assert!(!status_changed(&read_back, &written));
        let other = DaemonSetStatus {
            number_ready: 1,
            ..written.clone()
        };
        assert!(status_changed(&written, &other));
    }
}
