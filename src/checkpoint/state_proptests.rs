//! Properties over arbitrary observations, disks and clocks: no removal without the API,
//! one step reaches a fixed point, a restart only re-saves, and the executor's
//! preconditions (saved before activated, stopped before removed, self last) hold.

use super::tests::*;
use super::*;
use proptest::prelude::*;

const KEYS: [&str; 4] = [SELF, SIBLING, APISERVER, NGINX];

#[derive(Debug, Clone)]
struct PodCase {
    /// 0 not listed, 1 listed, 2 listed but terminating.
    api: u8,
    running: bool,
    /// 0 not listed, 1 Pending, 2 Running.
    kubelet: u8,
    /// 0 nothing, 1 the current checkpoint, 2 an older one.
    saved: u8,
    active: Active,
    gone_since: Option<i64>,
    saved_at: Option<i64>,
}

fn pod_case() -> impl Strategy<Value = PodCase> {
    let active = prop_oneof![Just(Active::No), Just(Active::Current), Just(Active::Stale)];
    let ago = proptest::option::of(-1200i64..=0);
    (
        0u8..3,
        any::<bool>(),
        0u8..3,
        0u8..3,
        active,
        ago.clone(),
        ago,
    )
        .prop_map(
            |(api, running, kubelet, saved, active, gone_since, saved_at)| PodCase {
                api,
                running,
                kubelet,
                saved,
                // An active copy with no saved one cannot be "as saved".
                active: if saved == 0 && active == Active::Current {
                    Active::Stale
                } else {
                    active
                },
                gone_since,
                saved_at,
            },
        )
}

#[derive(Debug, Clone)]
struct World {
    api_up: bool,
    runtime_up: bool,
    kubelet_up: bool,
    grace: i64,
    pods: Vec<PodCase>,
}

fn world() -> impl Strategy<Value = World> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(0i64), Just(60i64)],
        proptest::collection::vec(pod_case(), KEYS.len()),
    )
        .prop_map(|(api_up, runtime_up, kubelet_up, grace, pods)| World {
            api_up,
            runtime_up,
            kubelet_up,
            grace,
            pods,
        })
}

fn build(w: &World) -> (State, Observed) {
    let mut o = Observed {
        api: w.api_up.then(Vec::new),
        runtime: w.runtime_up.then(BTreeSet::new),
        kubelet: w.kubelet_up.then(Vec::new),
        disk: BTreeMap::new(),
    };
    let mut entries = Vec::new();
    for (k, c) in KEYS.iter().zip(&w.pods) {
        if let Some(api) = o.api.as_mut() {
            match c.api {
                1 => api.push(parent(k)),
                2 => api.push(terminating(parent(k))),
                _ => {}
            }
        }
        if c.running {
            o.runtime.as_mut().map(|r| r.insert(key(k)));
        }
        if let (Some(kl), 1 | 2) = (o.kubelet.as_mut(), c.kubelet) {
            kl.push(kubelet_pod(
                k,
                if c.kubelet == 2 { "Running" } else { "Pending" },
            ));
        }
        let saved = match c.saved {
            1 => Some(checkpoint(&parent(k))),
            2 => Some(checkpoint(&with_image(parent(k), "img:v0"))),
            _ => None,
        };
        if saved.is_some() || c.active != Active::No {
            let d = OnDisk {
                saved,
                active: c.active,
            };
            o.disk.insert(key(k), d);
        }
        entries.push((*k, c.gone_since, c.saved_at));
    }
    (clocks(&entries), o)
}

/// What the executor does to the disk, asserting the preconditions it relies on.
fn apply(disk: &mut BTreeMap<PodKey, OnDisk>, actions: &[Action]) -> Result<(), TestCaseError> {
    let me = key(SELF);
    for a in actions {
        match a {
            Action::Save { key, manifest, .. } => {
                let d = disk.entry(key.clone()).or_default();
                if d.active == Active::Current && d.saved.as_ref() != Some(&**manifest) {
                    d.active = Active::Stale;
                }
                d.saved = Some((**manifest).clone());
            }
            Action::Activate { key } => {
                let d = disk.get_mut(key);
                prop_assert!(
                    d.as_ref().is_some_and(|d| d.saved.is_some()),
                    "activate {key} unsaved"
                );
                if let Some(d) = d {
                    d.active = Active::Current;
                }
            }
            Action::Deactivate { key } => {
                prop_assert!(
                    *key != me,
                    "the self checkpoint is removed, never deactivated"
                );
                let d = disk.get_mut(key);
                prop_assert!(d.is_some(), "deactivate {key} absent");
                if let Some(d) = d {
                    d.active = Active::No;
                }
            }
            Action::Remove { key } => {
                let d = disk.remove(key);
                prop_assert!(d.is_some(), "remove {key} absent");
                if *key == me {
                    prop_assert!(
                        disk.values().all(|d| d.active == Active::No),
                        "self removed while others active"
                    );
                } else {
                    prop_assert_eq!(
                        d.map(|d| d.active),
                        Some(Active::No),
                        "removed {} while active",
                        key
                    );
                }
            }
        }
    }
    Ok(())
}

fn order(a: &Action) -> u8 {
    match a {
        Action::Deactivate { .. } => 0,
        Action::Save { .. } => 1,
        Action::Activate { .. } => 2,
        Action::Remove { .. } => 3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Fix c: with the API unreachable nothing is ever removed.
    #[test]
    fn no_removal_without_the_api(mut w in world(), now in 0i64..2000) {
        w.api_up = false;
        let (st, o) = build(&w);
        let got = step(&st, &o, t(now), &params(w.grace));
        prop_assert!(!got.actions.iter().any(|a| matches!(a, Action::Remove { .. })), "{:?}", got.actions);
    }

    /// One step reaches a fixed point; a restart from the resulting disk only re-saves,
    /// and that is a fixed point too.
    #[test]
    fn one_step_converges_and_a_restart_only_resaves(w in world()) {
        let (st, o) = build(&w);
        let p = params(w.grace);
        let first = step(&st, &o, t(0), &p);
        prop_assert!(first.actions.windows(2).all(|x| {
            let rank = |a: &Action| (order(a), order(a) == 3 && *a.key() == p.self_key, a.key().clone());
            rank(&x[0]) <= rank(&x[1])
        }), "order: {:?}", first.actions);
        let mut o2 = o.clone();
        apply(&mut o2.disk, &first.actions)?;
        let second = step(&first.state, &o2, t(0), &p);
        prop_assert_eq!(&second.actions, &vec![], "first: {:?}", first.actions);

        let restarted = step(&State::default(), &o2, t(0), &p);
        prop_assert!(restarted.actions.iter().all(|a| matches!(a, Action::Save { .. })), "{:?}", restarted.actions);
        let mut o3 = o2.clone();
        apply(&mut o3.disk, &restarted.actions)?;
        prop_assert_eq!(step(&restarted.state, &o3, t(0), &p).actions, vec![]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Over a run of cycles, with the disk carried from one to the next, the executor's
    /// preconditions hold at every step.
    #[test]
    fn a_run_of_cycles_keeps_the_executor_preconditions(
        worlds in proptest::collection::vec((world(), 0i64..90), 1..8),
    ) {
        let mut state = State::default();
        let mut disk = build(&worlds[0].0).1.disk;
        let mut now = 0;
        for (w, dt) in &worlds {
            now += dt;
            let mut o = build(w).1;
            o.disk = disk.clone();
            let got = step(&state, &o, t(now), &params(60));
            if !w.api_up {
                let removes = got.actions.iter().any(|a| matches!(a, Action::Remove { .. }));
                prop_assert!(!removes, "{:?}", got.actions);
            }
            apply(&mut disk, &got.actions)?;
            state = got.state;
        }
    }
}
