//! Each fix of bootkube's checkpointer, and the self checkpoint.

use super::tests::*;
use super::*;

#[test]
fn runtime_error_falls_back_to_the_kubelet_then_holds() {
    // bootkube: a runtime error meant "nothing runs", so every checkpoint started.
    let n = NGINX;
    let d = [(n, disk(n, Active::Current))];
    let mut o = obs(None, None, &d);
    assert_eq!(words(&run(&State::default(), &o, 0).actions, n), "");
    o.kubelet = Some(vec![kubelet_pod(n, "Running")]);
    assert_eq!(
        words(&run(&State::default(), &o, 0).actions, n),
        "deactivate"
    );
    let o = Observed {
        kubelet: Some(vec![kubelet_pod(n, "Pending")]),
        ..obs(None, None, &[(n, disk(n, Active::No))])
    };
    assert_eq!(words(&run(&State::default(), &o, 0).actions, n), "activate");
    let mut o = obs(None, Some(&[]), &[(n, disk(n, Active::Current))]);
    o.kubelet = Some(vec![kubelet_pod(n, "Running")]);
    assert_eq!(
        words(&run(&State::default(), &o, 0).actions, n),
        "",
        "the runtime wins"
    );
}

#[test]
fn a_terminating_parent_is_gone_and_its_checkpoint_does_not_start() {
    let n = NGINX;
    let mut o = obs(None, Some(&[]), &[(n, disk(n, Active::No))]);
    o.api = Some(vec![terminating(parent(n))]);
    let got = run(&State::default(), &o, 0);
    assert_eq!(words(&got.actions, n), "");
    assert_eq!(got.state.gone_since(&key(n)), Some(t(0)));
    assert_eq!(words(&run(&got.state, &o, GRACE).actions, n), "remove");
}

#[test]
fn removal_waits_for_a_whole_grace_period_of_the_api_saying_gone() {
    let n = NGINX;
    let d = [(n, disk(n, Active::Current))];
    let gone = obs(Some(&[]), Some(&[]), &d);
    let down = obs(None, Some(&[]), &d);
    let back = obs(Some(&[n]), Some(&[]), &d);
    let st = run(&State::default(), &gone, 0).state;
    assert_eq!(words(&run(&st, &gone, GRACE - 1).actions, n), "");
    assert_eq!(
        words(&run(&st, &gone, GRACE).actions, n),
        "deactivate remove"
    );
    // An outage (fix c) or the parent listed again restarts the clock.
    for interruption in [&down, &back] {
        let st2 = run(&st, interruption, 30).state;
        assert_eq!(st2.gone_since(&key(n)), None);
        let st3 = run(&st2, &gone, 40).state;
        assert_eq!(words(&run(&st3, &gone, GRACE + 39).actions, n), "");
        assert_eq!(
            words(&run(&st3, &gone, GRACE + 40).actions, n),
            "deactivate remove"
        );
    }
    // Expired long ago, but the API is down: nothing is removed, the checkpoint runs.
    let old = clocks(&[(n, Some(-10 * GRACE), None)]);
    assert_eq!(words(&run(&old, &down, 0).actions, n), "");
}

#[test]
fn a_restart_converges_from_disk_alone() {
    let (n, a) = (NGINX, APISERVER);
    // API down after a reboot: the saved api-server checkpoint starts; a lost active
    // file (bootkube never repaired a lost edge) is put back.
    let o = obs(
        None,
        Some(&[n]),
        &[(a, disk(a, Active::No)), (n, disk(n, Active::Current))],
    );
    let got = run(&State::default(), &o, 0);
    assert_eq!(
        all(&got.actions),
        [
            "deactivate default/nginx-ddddd",
            "activate kube-system/kube-apiserver-ccccc"
        ]
    );
    // An orphan found at restart waits a full grace period again.
    let o = obs(Some(&[]), Some(&[]), &[(n, disk(n, Active::No))]);
    let st = run(&State::default(), &o, 100).state;
    assert_eq!(words(&run(&st, &o, 100 + GRACE - 1).actions, n), "");
    assert_eq!(words(&run(&st, &o, 100 + GRACE).actions, n), "remove");
}

#[test]
fn self_checkpoint_is_always_active_and_saved_while_running() {
    let me = SELF;
    for o in [
        obs_raw(None, Some(&[me]), &[(me, disk(me, Active::No))]),
        obs_raw(None, Some(&[]), &[(me, disk(me, Active::No))]),
        obs_raw(Some(&[me]), Some(&[]), &[(me, disk(me, Active::No))]),
        obs_raw(Some(&[me]), None, &[(me, disk(me, Active::No))]),
        obs_raw(Some(&[]), Some(&[]), &[(me, disk(me, Active::No))]),
    ] {
        assert_eq!(
            words(&run(&State::default(), &o, 0).actions, me),
            "activate",
            "{o:?}"
        );
    }
    let first_run = obs_raw(Some(&[me]), Some(&[me]), &[]);
    assert_eq!(
        words(&run(&State::default(), &first_run, 0).actions, me),
        "save activate"
    );
    let mut updated = obs_raw(Some(&[me]), Some(&[me]), &[(me, disk(me, Active::Current))]);
    let st = clocks(&[(me, None, Some(0))]);
    assert_eq!(words(&run(&st, &updated, 1).actions, me), "");
    updated.api = Some(vec![with_image(parent(me), "img:v2")]);
    assert_eq!(words(&run(&st, &updated, 1).actions, me), "save activate");
}

#[test]
fn an_unscheduled_checkpointer_winds_down_everything_then_itself() {
    // Fix b: bootkube's self checkpoint could go inactive and stop all checkpoints each
    // cycle (#816, #764); here everything is removed once, self last.
    let (me, a, n) = (SELF, APISERVER, NGINX);
    let d = [
        (me, disk(me, Active::Current)),
        (a, disk(a, Active::Current)),
        (n, disk(n, Active::No)),
    ];
    let o = obs_raw(Some(&[a, n]), Some(&[a, n]), &d);
    let st = run(&State::default(), &o, 0).state;
    let during = run(&st, &o, GRACE - 1);
    assert!(
        during
            .actions
            .iter()
            .all(|x| matches!(x, Action::Deactivate { .. } | Action::Save { .. }))
    );
    let end = run(&st, &o, GRACE);
    assert_eq!(
        all(&end.actions),
        [
            "deactivate kube-system/kube-apiserver-ccccc",
            "remove default/nginx-ddddd",
            "remove kube-system/kube-apiserver-ccccc",
            "remove kube-system/pod-checkpointer-aaaaa",
        ]
    );
    // Afterwards nothing is saved again (a removed checkpointer must not come back).
    let empty = obs_raw(Some(&[a, n]), Some(&[a, n]), &[]);
    assert_eq!(run(&end.state, &empty, GRACE + 5).actions, []);
    // With the API down there is no wind-down, and the self checkpoint keeps running.
    let down = obs_raw(None, Some(&[]), &d);
    assert_eq!(
        all(&run(&st, &down, GRACE).actions),
        ["activate default/nginx-ddddd"]
    );
}

#[test]
fn a_rolling_update_retires_only_the_old_self_checkpoint() {
    let (me, sib, a) = (SELF, SIBLING, APISERVER);
    let d = [(me, disk(me, Active::Current)), (a, disk(a, Active::No))];
    let o = obs_raw(Some(&[sib, a]), Some(&[sib, a]), &d);
    let st = clocks(&[
        (me, Some(-GRACE), None),
        (a, None, Some(0)),
        (sib, None, None),
    ]);
    let got = run(&st, &o, 0);
    assert_eq!(
        all(&got.actions),
        [
            "save kube-system/pod-checkpointer-bbbbb",
            "remove kube-system/pod-checkpointer-aaaaa"
        ]
    );
    // Never while another checkpoint is active: whoever runs then must stop it later.
    let o = obs_raw(
        Some(&[sib]),
        Some(&[sib]),
        &[
            (me, disk(me, Active::Current)),
            (a, disk(a, Active::Current)),
        ],
    );
    let got = run(&st, &o, 0);
    assert_eq!(words(&got.actions, me), "");
    assert_eq!(words(&got.actions, a), "");
}

#[test]
fn same_daemon_set_table() {
    let me = key(SELF);
    assert!(same_daemon_set(&me, &parent(SIBLING)));
    assert!(!same_daemon_set(&me, &parent(APISERVER)));
    let mut other_ns = parent(SIBLING);
    other_ns.metadata.namespace = Some("default".into());
    assert!(!same_daemon_set(&me, &other_ns));
    for name in [
        "pod-checkpointer-x-aaaaa",
        "pod-checkpointer-",
        "pod-checkpointeraaaaa",
    ] {
        assert!(
            !same_daemon_set(&PodKey::new("kube-system", name), &parent(SIBLING)),
            "{name}"
        );
    }
}

#[test]
fn actions_are_ordered_by_kind_then_key() {
    let (a, n, x) = (APISERVER, NGINX, "default/a-eeeee");
    let d = [
        (a, disk(a, Active::Current)),
        (n, disk(n, Active::Current)),
        (x, disk(x, Active::No)),
    ];
    let st = clocks(&[(x, Some(-GRACE), None)]);
    let got = run(&st, &obs(Some(&[a, n]), Some(&[a, n]), &d), 0);
    assert_eq!(
        all(&got.actions),
        [
            "deactivate default/nginx-ddddd",
            "deactivate kube-system/kube-apiserver-ccccc",
            "save default/nginx-ddddd",
            "save kube-system/kube-apiserver-ccccc",
            "remove default/a-eeeee",
        ]
    );
}

#[test]
fn clocks_of_removed_pods_are_forgotten_but_self_is_kept() {
    let n = NGINX;
    let st = clocks(&[
        (n, Some(-GRACE), None),
        ("default/old-fffff", Some(0), None),
    ]);
    let got = run(&st, &obs_raw(Some(&[]), Some(&[]), &[]), 0);
    assert_eq!(got.state.clocks.keys().collect::<Vec<_>>(), [&key(SELF)]);
}

#[test]
fn non_parents_in_the_lists_are_ignored() {
    let n = NGINX;
    let mut mirror = checkpoint(&parent(n));
    mirror.metadata.name = Some("nginx-ddddd-node".into());
    let mut o = obs(Some(&[]), Some(&[]), &[(n, disk(n, Active::No))]);
    o.api = Some(vec![mirror, Pod::default()]);
    let got = run(&State::default(), &o, 0);
    assert_eq!(
        got.state.gone_since(&key(n)),
        Some(t(0)),
        "the mirror pod is not the parent"
    );
}
