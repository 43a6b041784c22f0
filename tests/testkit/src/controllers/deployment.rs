//! The Deployment controller: one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, scaled up while the older ones are scaled down.
//! Pure: [`plan`] maps one Deployment and the ReplicaSets to writes.
//!
//! *Expected flow.* The template's hash names the new ReplicaSet (label, selector and
//! pod label `pod-template-hash`); the others it controls are old. `RollingUpdate`
//! (simplified): the new one gets `spec.replicas` at once, and the old ones together
//! keep `replicas - available(new)`, scaled down oldest first, so pods are replaced only
//! once their successors are ready (as with `maxSurge: 100%, maxUnavailable: 0`).
//! `Recreate`: old ones go to 0; the new one gets its replicas once no old pod is left.
//! The status is summed from the ReplicaSets' statuses, with `Available` and
//! `Progressing` conditions.
//!
//! *Guarantees.* Each step is idempotent: creating an existing ReplicaSet is a 409 that
//! counts as done, and scaling writes an absolute number.
//!
//! *Caveats / not done.* `maxSurge`/`maxUnavailable` only shape the `Available`
//! condition, `paused`, `progressDeadlineSeconds`, `minReadySeconds`, rollbacks,
//! `revisionHistoryLimit` clean-up, hash collisions (`collisionCount`) and orphan
//! adoption are not implemented.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::world::{self, Action, Owner};
use super::{hash, pods};

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";

fn rs_hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH)
        .map(String::as_str)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSet for the deployment's current template.
pub fn new_replica_set(d: &Deployment, hash: &str, replicas: i32, rev: i64) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let add = |m: Option<BTreeMap<String, String>>| {
        let mut m = m.unwrap_or_default();
        m.insert(POD_TEMPLATE_HASH.into(), hash.into());
        Some(m)
    };
    let mut template = spec.template.clone();
    let mut tmeta = template.metadata.unwrap_or_default();
    tmeta.labels = add(tmeta.labels);
    template.metadata = Some(tmeta);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            labels: add(spec.template.metadata.and_then(|m| m.labels)),
            annotations: Some(BTreeMap::from([(REVISION.into(), rev.to_string())])),
            owner_references: Some(vec![pods::owner("Deployment", &d.metadata)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: add(spec.selector.match_labels),
                match_expressions: spec.selector.match_expressions,
            },
            template: Some(template),
        }),
        status: None,
    }
}

/// `maxUnavailable` of a rolling update scaled to `desired` (rounded down; default 25%).
pub fn max_unavailable(d: &Deployment, desired: i32) -> i32 {
    let strategy = d.spec.as_ref().and_then(|s| s.strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return 0;
    }
    let v = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::String("25%".into()));
    match v {
        IntOrString::Int(n) => n.clamp(0, desired.max(0)),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |p| {
                i32::try_from(p * i64::from(desired) / 100).unwrap_or(0)
            }),
    }
}

fn condition(
    old: &[DeploymentCondition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    let status = if ok { "True" } else { "False" }.to_string();
    let prev = old.iter().find(|c| c.type_ == type_);
    let same_status = prev.is_some_and(|c| c.status == status);
    let same_all = same_status
        && prev.is_some_and(|c| {
            c.reason.as_deref() == Some(reason) && c.message.as_ref() == Some(&message)
        });
    DeploymentCondition {
        type_: type_.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: prev
            .filter(|_| same_status)
            .and_then(|c| c.last_transition_time.clone())
            .or(Some(now.clone())),
        last_update_time: prev
            .filter(|_| same_all)
            .and_then(|c| c.last_update_time.clone())
            .or(Some(now.clone())),
    }
}

/// The writes for one Deployment.
#[must_use]
pub fn plan(d: &Deployment, all_rs: &[ReplicaSet], now: &Time) -> Vec<Action> {
    let spec = d.spec.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let uid = d.metadata.uid.as_deref();
    let h = hash::template_hash(&spec.template);
    let mut owned: Vec<&ReplicaSet> = all_rs
        .iter()
        .filter(|rs| pods::controlled_by(&rs.metadata, uid))
        .collect();
    owned.sort_by_key(|rs| {
        (
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            rs.metadata.name.clone(),
        )
    });
    let new = owned
        .iter()
        .copied()
        .find(|rs| rs_hash(rs) == Some(h.as_str()));
    let old: Vec<&ReplicaSet> = owned
        .iter()
        .copied()
        .filter(|rs| rs_hash(rs) != Some(h.as_str()))
        .collect();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let spec_of = |rs: &ReplicaSet| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let mut actions = Vec::new();
    let scale = |rs: &ReplicaSet, n: i32| Action::ScaleReplicaSet {
        namespace: ns.clone(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        replicas: n,
    };
    let target = if recreate {
        let old_left: i32 = old.iter().map(|rs| spec_of(rs) + st_of(rs).replicas).sum();
        actions.extend(
            old.iter()
                .filter(|rs| spec_of(rs) != 0)
                .map(|rs| scale(rs, 0)),
        );
        if old_left == 0 { desired } else { 0 }
    } else {
        let new_available = new.map_or(0, |rs| st_of(rs).available_replicas.unwrap_or(0));
        let mut allowed = (desired - new_available).max(0);
        for rs in old.iter().rev() {
            let keep = spec_of(rs).min(allowed);
            allowed -= keep;
            if keep != spec_of(rs) {
                actions.push(scale(rs, keep));
            }
        }
        desired
    };
    match new {
        None => {
            let rev = owned.iter().map(|rs| revision(rs)).max().unwrap_or(0) + 1;
            actions.push(Action::CreateReplicaSet(Box::new(new_replica_set(
                d, &h, target, rev,
            ))));
        }
        Some(rs) if spec_of(rs) != target => actions.push(scale(rs, target)),
        Some(_) => {}
    }
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| owned.iter().map(|rs| f(rs)).sum::<i32>();
    let available = sum(&|rs| st_of(rs).available_replicas.unwrap_or(0));
    let total = sum(&|rs| st_of(rs).replicas);
    let updated = new.map_or(0, |rs| st_of(rs).replicas);
    let old_st = d.status.clone().unwrap_or_default();
    let conds = old_st.conditions.clone().unwrap_or_default();
    let new_name = format!("{name}-{h}");
    let min_ok = available >= desired - max_unavailable(d, desired);
    let complete = updated == desired && total == desired && available == desired;
    let st = DeploymentStatus {
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(sum(&|rs| st_of(rs).ready_replicas.unwrap_or(0))),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        observed_generation: d.metadata.generation,
        collision_count: old_st.collision_count,
        terminating_replicas: old_st.terminating_replicas,
        conditions: Some(vec![
            if min_ok {
                condition(
                    &conds,
                    "Available",
                    true,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.".into(),
                    now,
                )
            } else {
                condition(
                    &conds,
                    "Available",
                    false,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.".into(),
                    now,
                )
            },
            if complete {
                condition(
                    &conds,
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                    now,
                )
            } else {
                condition(
                    &conds,
                    "Progressing",
                    true,
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{new_name}\" is progressing."),
                    now,
                )
            },
        ]),
    };
    if world::status_changed(&old_st, &st) {
        actions.push(Action::Status {
            owner: Owner::Deployment,
            namespace: ns,
            name,
            status: serde_json::to_value(&st).unwrap_or_default(),
        });
    }
    actions
}

#[cfg(test)]
#[path = "deployment_tests.rs"]
mod tests;
