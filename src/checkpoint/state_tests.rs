//! The state table cell by cell, saves, and the helpers the other state tests share.

use super::*;
use crate::checkpoint::sanitize as s;

pub(super) const ROOT: &str = "/ck";
pub(super) const SELF: &str = "kube-system/pod-checkpointer-aaaaa";
pub(super) const SIBLING: &str = "kube-system/pod-checkpointer-bbbbb";
pub(super) const APISERVER: &str = "kube-system/kube-apiserver-ccccc";
pub(super) const NGINX: &str = "default/nginx-ddddd";
pub(super) const GRACE: i64 = 60;

pub(super) fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

pub(super) fn key(k: &str) -> PodKey {
    let (ns, name) = k.split_once('/').unwrap();
    PodKey::new(ns, name)
}

pub(super) fn params(grace: i64) -> Params {
    Params {
        self_key: key(SELF),
        grace: SignedDuration::from_secs(grace),
        refresh: SignedDuration::from_secs(600),
        checkpoint_root: ROOT.into(),
        namespaces: BTreeSet::new(),
    }
}

/// A parent as the API lists it; checkpointer pods belong to DaemonSet pod-checkpointer.
pub(super) fn parent(k: &str) -> Pod {
    let k = key(k);
    let owner = match k.name.strip_prefix("pod-checkpointer-") {
        Some(_) => "DaemonSet, name: pod-checkpointer",
        None => "ReplicaSet, name: rs",
    };
    serde_yaml_ng::from_str(&format!(
        r#"
metadata:
  name: {name}
  namespace: {ns}
  uid: uid-{name}
  annotations: {{checkpointer.alpha.coreos.com/checkpoint: "true"}}
  ownerReferences: [{{apiVersion: apps/v1, kind: {owner}, uid: o, controller: true}}]
spec:
  containers: [{{name: c, image: "img:v1", volumeMounts: [{{name: s, mountPath: /s}}]}}]
  volumes: [{{name: s, secret: {{secretName: s}}}}]
"#,
        name = k.name,
        ns = k.namespace
    ))
    .unwrap()
}

pub(super) fn with_image(mut p: Pod, image: &str) -> Pod {
    p.spec.as_mut().unwrap().containers[0].image = Some(image.into());
    p
}

pub(super) fn terminating(mut p: Pod) -> Pod {
    p.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
    p
}

pub(super) fn kubelet_pod(k: &str, phase: &str) -> Pod {
    let mut p = parent(k);
    p.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some(phase.into()),
        ..Default::default()
    });
    p
}

pub(super) fn checkpoint(p: &Pod) -> Pod {
    s::sanitize(p, ROOT).unwrap().pod
}

pub(super) fn disk(k: &str, active: Active) -> OnDisk {
    OnDisk {
        saved: Some(checkpoint(&parent(k))),
        active,
    }
}

/// Observations: the API (`None`: unreachable) and the runtime list parents by key.
/// The API lists the checkpointer too, so that it stays scheduled.
pub(super) fn obs(
    api: Option<&[&str]>,
    running: Option<&[&str]>,
    on_disk: &[(&str, OnDisk)],
) -> Observed {
    let mut o = obs_raw(api, running, on_disk);
    if let Some(l) = o.api.as_mut() {
        l.push(parent(SELF));
    }
    o
}

/// Observations where the API lists exactly `api`.
pub(super) fn obs_raw(
    api: Option<&[&str]>,
    running: Option<&[&str]>,
    on_disk: &[(&str, OnDisk)],
) -> Observed {
    Observed {
        api: api.map(|l| l.iter().map(|k| parent(k)).collect()),
        runtime: running.map(|l| l.iter().map(|k| key(k)).collect()),
        kubelet: None,
        disk: on_disk.iter().map(|(k, d)| (key(k), d.clone())).collect(),
    }
}

/// A state whose clocks are (key, gone since, saved at), in seconds from `t(0)`.
pub(super) fn clocks(entries: &[(&str, Option<i64>, Option<i64>)]) -> State {
    State {
        clocks: entries
            .iter()
            .map(|(k, g, s)| {
                let c = Clocks {
                    gone_since: g.map(t),
                    saved_at: s.map(t),
                };
                (key(k), c)
            })
            .collect(),
    }
}

/// The actions for `k`, as words.
pub(super) fn words(actions: &[Action], k: &str) -> String {
    let k = key(k);
    let w: Vec<&str> = actions
        .iter()
        .filter(|a| *a.key() == k)
        .map(|a| match a {
            Action::Save { .. } => "save",
            Action::Activate { .. } => "activate",
            Action::Deactivate { .. } => "deactivate",
            Action::Remove { .. } => "remove",
        })
        .collect();
    w.join(" ")
}

/// Every action as `word key`, in order.
pub(super) fn all(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                words(std::slice::from_ref(a), &a.key().to_string()),
                a.key()
            )
        })
        .collect()
}

pub(super) fn run(state: &State, o: &Observed, now: i64) -> Step {
    step(state, o, t(now), &params(GRACE))
}

#[test]
fn table_of_an_ordinary_checkpoint() {
    let n = NGINX;
    let fresh = State::default();
    let gone = clocks(&[(n, Some(-GRACE), Some(0))]);
    let unknown = |d: &[(&str, OnDisk)]| obs(Some(&[n]), None, d);
    #[allow(clippy::type_complexity)]
    let columns: [(&str, &dyn Fn(&[(&str, OnDisk)]) -> Observed, &State); 7] = [
        ("¬A∧R", &|d| obs(None, Some(&[n]), d), &fresh),
        ("A∧P∧R", &|d| obs(Some(&[n]), Some(&[n]), d), &fresh),
        ("¬A∧¬R", &|d| obs(None, Some(&[]), d), &fresh),
        ("A∧P∧¬R", &|d| obs(Some(&[n]), Some(&[]), d), &fresh),
        ("R unknown", &unknown, &fresh),
        ("A∧¬P", &|d| obs(Some(&[]), Some(&[]), d), &fresh),
        ("gone", &|d| obs(Some(&[]), Some(&[n]), d), &gone),
    ];
    let stale = OnDisk {
        saved: Some(checkpoint(&with_image(parent(n), "img:v0"))),
        active: Active::Stale,
    };
    let active_only = OnDisk {
        saved: None,
        active: Active::Stale,
    };
    let rows: [(&str, Option<OnDisk>, [&str; 7]); 5] = [
        ("nothing", None, ["", "save", "", "", "", "", ""]),
        (
            "inactive",
            Some(disk(n, Active::No)),
            ["", "save", "activate", "activate", "", "", "remove"],
        ),
        (
            "active",
            Some(disk(n, Active::Current)),
            [
                "deactivate",
                "deactivate save",
                "",
                "",
                "",
                "",
                "deactivate remove",
            ],
        ),
        (
            "stale",
            Some(stale),
            [
                "deactivate",
                "deactivate save",
                "activate",
                "activate",
                "",
                "",
                "deactivate remove",
            ],
        ),
        (
            "active, not saved",
            Some(active_only),
            [
                "deactivate",
                "deactivate save",
                "",
                "",
                "",
                "",
                "deactivate remove",
            ],
        ),
    ];
    for (row, on_disk, want) in rows {
        let d: Vec<(&str, OnDisk)> = on_disk.into_iter().map(|d| (n, d)).collect();
        for ((col, o, state), want) in columns.iter().zip(want) {
            let got = run(state, &o(&d), 0);
            assert_eq!(words(&got.actions, n), want, "{row} × {col}");
            assert!(got.errors.is_empty());
        }
    }
}

#[test]
fn a_save_is_emitted_when_the_manifest_changes_or_the_refresh_is_due() {
    let n = NGINX;
    let o = obs(Some(&[n]), Some(&[n]), &[(n, disk(n, Active::No))]);
    assert_eq!(
        words(&run(&clocks(&[(n, None, Some(0))]), &o, 599).actions, n),
        ""
    );
    assert_eq!(
        words(&run(&clocks(&[(n, None, Some(0))]), &o, 600).actions, n),
        "save"
    );
    let mut o2 = o.clone();
    o2.api = Some(vec![with_image(parent(n), "img:v2")]);
    let got = run(&clocks(&[(n, None, Some(0))]), &o2, 1);
    let Some(Action::Save {
        manifest,
        materialize,
        ..
    }) = got.actions.first()
    else {
        panic!("{:?}", got.actions)
    };
    assert_eq!(**manifest, checkpoint(&with_image(parent(n), "img:v2")));
    assert_eq!(materialize.len(), 1);
    assert_eq!(got.state.clocks[&key(n)].saved_at, Some(t(1)));
}

#[test]
fn a_failed_save_is_retried() {
    let n = NGINX;
    let o = obs(Some(&[n]), Some(&[n]), &[(n, disk(n, Active::No))]);
    let mut st = run(&State::default(), &o, 0).state;
    assert_eq!(words(&run(&st, &o, 1).actions, n), "");
    st.save_failed(&key(n));
    assert_eq!(words(&run(&st, &o, 1).actions, n), "save");
}

#[test]
fn a_parent_that_cannot_be_checkpointed_is_reported_and_still_stopped_for() {
    let n = NGINX;
    let mut p = parent(n);
    p.metadata.uid = None;
    let mut o = obs(None, Some(&[n]), &[(n, disk(n, Active::Current))]);
    o.api = Some(vec![p]);
    let got = run(&State::default(), &o, 0);
    assert_eq!(words(&got.actions, n), "deactivate");
    assert!(got.errors[0].to_string().contains(n), "{:?}", got.errors);
}

/// Issue 12, finding 1: any annotated pod in any namespace was checkpointed, so whoever may
/// create pods somewhere got a static pod on a master. Only the allowed namespaces count; a
/// checkpoint already on disk for another namespace goes the way of a deleted parent.
#[test]
fn only_the_allowed_namespaces_are_checkpointed() {
    let mut p = params(GRACE);
    p.namespaces = BTreeSet::from(["kube-system".to_string()]);
    let o = obs(Some(&[NGINX, APISERVER]), Some(&[NGINX, APISERVER]), &[]);
    let step1 = step(&State::default(), &o, t(0), &p);
    assert_eq!(words(&step1.actions, APISERVER), "save");
    assert_eq!(words(&step1.actions, NGINX), "");
    // An old checkpoint of NGINX: no longer listed as a parent, so removed after the grace.
    let o = obs(
        Some(&[NGINX]),
        Some(&[]),
        &[(NGINX, disk(NGINX, Active::No))],
    );
    let s1 = step(&State::default(), &o, t(0), &p);
    let s2 = step(&s1.state, &o, t(GRACE + 1), &p);
    assert_eq!(words(&s2.actions, NGINX), "remove");
    // The whole allow-list off (`*`): everything annotated, as before.
    let o = obs(Some(&[NGINX]), Some(&[NGINX]), &[]);
    assert_eq!(words(&run(&State::default(), &o, 0).actions, NGINX), "save");
}
