//! One cycle's observations: the pods the API lists on this node, what runs here (the
//! container runtime, else the kubelet: `runtime`), and the checkpoints on disk, assembled into the `Observed` that `state::step`
//! reads.
//!
//! The API is asked for the node's pods in all namespaces (bootkube asked only its own
//! namespace of the API but every namespace of the runtime, an asymmetry its notes
//! call out). A checkpointer whose RBAC only covers some namespaces gets 403 for that;
//! it then lists, one by one, the namespaces it has business in: its own, those of the
//! parents running here, and those of the checkpoints on disk. Any namespace that
//! does not answer makes the whole API view unknown, never partial: a parent missing
//! from a partial list would look deleted, and its checkpoint would be removed.
//!
//! Without an own pod (the systemd unit), `state::step` still needs a self key: it gets
//! one no pod can have (`kubeboot.invalid`, not a DNS label) that the API always lists
//! and that never runs, so nothing is saved, activated or wound down for it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};

use super::sanitize::ANNOTATION_CHECKPOINT;
use super::state::{Observed, OnDisk, PodKey};
use super::unauthorized::Answer;
use crate::source::error_chain;

/// The self key of a checkpointer that is not a pod.
#[must_use]
pub fn no_self_key() -> PodKey {
    PodKey::new("kubeboot.invalid", "no-own-pod")
}

/// The pod [`no_self_key`] stands for, as the API would list it.
fn no_self_pod() -> Pod {
    let key = no_self_key();
    Pod {
        metadata: ObjectMeta {
            name: Some(key.name),
            namespace: Some(key.namespace),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_CHECKPOINT.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Why the API's pods are unknown this cycle, and how the api-server answered (for
/// [`super::unauthorized`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub message: String,
    pub answer: Answer,
}

/// How a failed request was answered: a 401, another HTTP status, or nothing.
fn answer_of(e: &kube::Error) -> Answer {
    match e {
        kube::Error::Api(s) if s.code == 401 => Answer::Unauthorized,
        kube::Error::Api(_) => Answer::Answered,
        _ => Answer::Silent,
    }
}

/// The API's pods on `node`; `Err` when the API did not answer with them (the message
/// says why), `namespaces` being the fallback when listing all namespaces is forbidden.
pub async fn api_pods(
    client: &kube::Client,
    node: &str,
    namespaces: &BTreeSet<String>,
) -> Result<Vec<Pod>, ApiFailure> {
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    match Api::<Pod>::all(client.clone()).list(&lp).await {
        Ok(list) => return Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        Err(e) => {
            return Err(ApiFailure {
                message: format!("listing pods on node {node}: {}", error_chain(&e)),
                answer: answer_of(&e),
            });
        }
    }
    let mut pods = Vec::new();
    for ns in namespaces {
        let list = Api::<Pod>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(|e| ApiFailure {
                message: format!(
                    "listing pods on node {node} in namespace {ns} (listing all namespaces is forbidden): {}",
                    error_chain(&e)
                ),
                answer: answer_of(&e),
            })?;
        pods.extend(list.items);
    }
    Ok(pods)
}

/// The namespaces the checkpointer has business in, for [`api_pods`]' fallback.
#[must_use]
pub fn namespaces(
    own: &str,
    running: Option<&BTreeSet<PodKey>>,
    disk: &BTreeMap<PodKey, OnDisk>,
) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = disk.keys().map(|k| k.namespace.clone()).collect();
    out.insert(own.to_string());
    if let Some(running) = running {
        out.extend(running.iter().map(|k| k.namespace.clone()));
    }
    out.remove(&no_self_key().namespace);
    out
}

/// The observations for `step`. `running`: the parents running here, from the runtime
/// or the kubelet (`runtime::WhatRuns`); `kubelet`: the kubelet's pods when it was the
/// one asked. `has_self`: the checkpointer runs as a pod.
#[must_use]
pub fn assemble(
    api: Option<Vec<Pod>>,
    running: Option<BTreeSet<PodKey>>,
    kubelet: Option<Vec<Pod>>,
    disk: BTreeMap<PodKey, OnDisk>,
    has_self: bool,
) -> Observed {
    let api = api.map(|mut pods| {
        if !has_self {
            pods.push(no_self_pod());
        }
        pods
    });
    Observed {
        api,
        runtime: running,
        kubelet,
        disk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::kubelet::running_parents;
    use crate::checkpoint::state::{self, Params, State};
    use jiff::{SignedDuration, Timestamp};

    fn params() -> Params {
        Params {
            self_key: no_self_key(),
            grace: SignedDuration::from_secs(60),
            refresh: SignedDuration::from_secs(600),
            checkpoint_root: "/ck".into(),
            namespaces: BTreeSet::new(),
        }
    }

    /// A checkpoint on disk, saved and active.
    fn on_disk() -> BTreeMap<PodKey, OnDisk> {
        let saved: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default",
                "annotations": {"checkpointer.alpha.coreos.com/checkpoint-of": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))
        .unwrap();
        BTreeMap::from([(
            PodKey::new("default", "web"),
            OnDisk {
                saved: Some(saved),
                active: state::Active::Current,
            },
        )])
    }

    #[test]
    fn without_an_own_pod_nothing_winds_down_and_nothing_is_done_for_self() {
        let mut st = State::default();
        let p = params();
        let parent: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let mut inactive = on_disk();
        if let Some(d) = inactive.values_mut().next() {
            d.active = state::Active::No;
        }
        // Long past the grace period the parent is still saved: a self key that is not
        // listed would have wound everything down by now.
        for secs in [0, 30, 61, 200] {
            let pods = vec![parent.clone()];
            let running = Some(running_parents(&pods));
            let obs = assemble(
                Some(pods.clone()),
                running,
                Some(pods),
                inactive.clone(),
                false,
            );
            let now = Timestamp::from_second(1_700_000_000 + secs).unwrap();
            let s = state::step(&st, &obs, now, &p);
            assert!(
                s.actions
                    .iter()
                    .all(|a| matches!(a, state::Action::Save { .. }) && *a.key() != p.self_key),
                "{secs}: {:?}",
                s.actions
            );
            st = s.state;
        }
        // With the API down the saved checkpoint is activated as usual.
        let obs = assemble(None, Some(BTreeSet::new()), None, inactive, false);
        let s = state::step(
            &st,
            &obs,
            Timestamp::from_second(1_700_001_000).unwrap(),
            &p,
        );
        assert_eq!(
            s.actions,
            vec![state::Action::Activate {
                key: PodKey::new("default", "web")
            }]
        );
    }

    #[test]
    fn fallback_namespaces_are_own_running_parents_and_disk() {
        let pods: Vec<Pod> = serde_json::from_value(serde_json::json!([
            {"metadata": {"name": "a", "namespace": "team",
                "annotations": {"checkpointer.alpha.coreos.com/checkpoint": "true"}}},
            {"metadata": {"name": "b", "namespace": "other"}}
        ]))
        .unwrap();
        let got = namespaces("kube-system", Some(&running_parents(&pods)), &on_disk());
        let want: BTreeSet<String> = ["default", "kube-system", "team"].map(String::from).into();
        assert_eq!(got, want);
    }
}
