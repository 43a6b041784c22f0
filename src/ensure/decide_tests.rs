use super::*;

const GRACE: Duration = Duration::from_secs(300);

fn policy(allowed: bool) -> Policy {
    Policy {
        boot_grace: GRACE,
        backup_restore_allowed: allowed,
    }
}

fn backup(self_hosted: bool) -> Backup {
    Backup {
        snapshot: PathBuf::from("/var/lib/kubeboot/backups/20261126T000000Z-r9/snapshot.db"),
        revision: 9,
        self_hosted_etcd: self_hosted,
        from: None,
    }
}

/// A node after its boot grace: kubelet up, api-server down, nothing else probed.
fn down_after_grace() -> Observation {
    Observation {
        elapsed: GRACE,
        kubelet: Kubelet::Healthy,
        apiserver: Apiserver::Down("connection refused".into()),
        etcd: None,
        backup: Err("no backup in /var/lib/kubeboot/backups".into()),
        local: Some(local(LocalState::Missing)),
        marker: None,
    }
}

fn local(state: LocalState) -> LocalData {
    LocalData {
        dir: PathBuf::from("/var/lib/etcd"),
        state,
        etcd_pod: None,
    }
}

fn starts_local(d: &Decision) -> bool {
    matches!(
        d,
        Decision::Recover {
            via: Via::Local { .. },
            ..
        }
    )
}

/// After the grace with etcd down and a self-hosted backup at revision 9: what the
/// local data dir in `state` leads to.
fn with_local(state: Option<LocalState>, allowed: bool) -> Decision {
    let mut o = down_after_grace();
    o.etcd = Some(Err("connection refused".into()));
    o.backup = Ok(backup(true));
    o.local = state.map(local);
    decide(&o, &policy(allowed))
}

fn restores_backup(d: &Decision) -> bool {
    matches!(
        d,
        Decision::Recover {
            via: Via::Backup(_),
            ..
        }
    )
}

#[test]
fn a_complete_control_plane_is_healthy_at_once() {
    let o = Observation {
        elapsed: Duration::ZERO,
        apiserver: Apiserver::Up {
            unready: vec![],
            gone: vec![],
        },
        ..down_after_grace()
    };
    assert_eq!(decide(&o, &policy(false)), Decision::Healthy);
}

#[test]
fn nothing_is_touched_within_the_boot_grace() {
    let mut o = down_after_grace();
    o.elapsed = GRACE - Duration::from_secs(1);
    o.etcd = Some(Ok(()));
    assert!(matches!(decide(&o, &policy(true)), Decision::Wait(w) if w.contains("not ready yet")));
    o.apiserver = Apiserver::Up {
        unready: vec![],
        gone: vec!["kube-system/kube-scheduler: no pod on a live node".into()],
    };
    assert!(matches!(decide(&o, &policy(true)), Decision::Wait(w) if w.contains("kube-scheduler")));
    o.kubelet = Kubelet::Down("connection refused".into());
    assert!(matches!(decide(&o, &policy(true)), Decision::Wait(w) if w.contains("kubelet")));
}

#[test]
fn a_failed_kubelet_unit_is_not_waited_for() {
    let mut o = down_after_grace();
    o.elapsed = Duration::ZERO;
    o.kubelet = Kubelet::Failed("kubelet.service is failed (failed)".into());
    assert!(
        matches!(decide(&o, &policy(true)), Decision::Failed(w) if w.contains("kubelet.service is failed"))
    );
}

#[test]
fn without_a_kubelet_after_grace_recovery_is_impossible() {
    let mut o = down_after_grace();
    o.kubelet = Kubelet::Down("connection refused".into());
    o.etcd = Some(Ok(()));
    assert!(matches!(decide(&o, &policy(true)), Decision::Failed(w) if w.contains("kubelet")));
}

#[test]
fn gone_components_are_recovered_through_the_apiserver() {
    let mut o = down_after_grace();
    o.apiserver = Apiserver::Up {
        unready: vec![],
        gone: vec!["kube-system/kube-scheduler: no pod on a live node".into()],
    };
    o.etcd = Some(Ok(()));
    match decide(&o, &policy(false)) {
        Decision::Recover { via, why } => {
            assert_eq!(via, Via::Apiserver);
            assert!(why.contains("kube-scheduler"), "{why}");
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_dead_apiserver_falls_back_to_a_live_etcd() {
    let mut o = down_after_grace();
    o.etcd = Some(Ok(()));
    o.backup = Ok(backup(true));
    assert!(matches!(
        decide(&o, &policy(true)),
        Decision::Recover { via: Via::Etcd, .. }
    ));
}

#[test]
fn with_etcd_down_too_the_newest_backup_is_restored_only_where_allowed() {
    let mut o = down_after_grace();
    o.etcd = Some(Err("connection refused".into()));
    o.backup = Ok(backup(true));
    match decide(&o, &policy(true)) {
        Decision::Recover {
            via: Via::Backup(b),
            why,
        } => {
            assert_eq!(b, backup(true));
            assert!(
                why.contains("etcd is down too") && why.contains("revision 9"),
                "{why}"
            );
        }
        d => panic!("{d:?}"),
    }
    match decide(&o, &policy(false)) {
        Decision::Refused(why) => {
            assert!(
                why.contains("--allow-backup-restore") && why.contains("r9/snapshot.db"),
                "{why}"
            )
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_backup_of_an_external_etcd_is_not_a_source() {
    let mut o = down_after_grace();
    o.etcd = Some(Err("connection refused".into()));
    o.backup = Ok(backup(false));
    assert!(
        matches!(decide(&o, &policy(true)), Decision::NoSource(w) if w.contains("external etcd"))
    );
}

#[test]
fn no_source_at_all_says_what_was_tried() {
    let o = down_after_grace();
    match decide(&o, &policy(true)) {
        Decision::NoSource(why) => assert!(
            why.contains("connection refused")
                && why.contains("no etcd endpoints")
                && why.contains("no backup in"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_missing_local_data_dir_lets_the_backup_be_restored() {
    match with_local(Some(LocalState::Missing), true) {
        Decision::Recover {
            via: Via::Backup(_),
            why,
        } => assert!(
            why.contains("/var/lib/etcd has no member/snap/db") && why.contains("revision 9"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_corrupt_local_data_dir_lets_the_backup_be_restored() {
    match with_local(Some(LocalState::Unreadable("bad meta page".into())), true) {
        Decision::Recover {
            via: Via::Backup(_),
            why,
        } => assert!(why.contains("unreadable (bad meta page)"), "{why}"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn an_older_local_data_dir_is_restored_over() {
    match with_local(Some(LocalState::Intact { revision: 8 }), true) {
        Decision::Recover {
            via: Via::Backup(_),
            why,
        } => assert!(
            why.contains("intact at revision 8, older than the backup"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
}

#[test]
fn a_local_data_dir_as_new_as_the_backup_is_never_replaced() {
    for revision in [9, 10, i64::MAX] {
        // Where policy lets this node recover without etcd's lock: started as it is.
        match with_local(Some(LocalState::Intact { revision }), true) {
            Decision::Recover {
                via: Via::Local { dir, revision: r },
                why,
            } => {
                assert_eq!((dir, r), (PathBuf::from("/var/lib/etcd"), revision));
                assert!(
                    why.contains(&format!("intact at revision {revision}, not older than"))
                        && why.contains("not replaced")
                        && why.contains("starting etcd on it as it is"),
                    "{why}"
                );
            }
            d => panic!("{d:?}"),
        }
        // Elsewhere: waited for.
        match with_local(Some(LocalState::Intact { revision }), false) {
            Decision::Wait(why) => assert!(
                why.contains(&format!("intact at revision {revision}, not older than"))
                    && why.contains("not replaced")
                    && why.contains("--backup-restore-node"),
                "{why}"
            ),
            d => panic!("{d:?}"),
        }
    }
}

#[test]
fn no_restore_before_the_local_data_dir_was_read() {
    let d = with_local(None, true);
    assert!(
        matches!(&d, Decision::Wait(w) if w.contains("reading the local etcd data dir")),
        "{d:?}"
    );
}

/// data-survives: no etcd configured, no backup, the data dir intact: started on the
/// node policy names, waited for elsewhere; missing, it is no source.
#[test]
fn without_etcd_endpoints_an_intact_local_data_dir_is_started() {
    let mut o = down_after_grace();
    o.etcd = None;
    o.backup = Err("no backup in /var/lib/kubeboot/backups".into());
    o.local = Some(local(LocalState::Intact { revision: 4 }));
    match decide(&o, &policy(true)) {
        Decision::Recover {
            via: Via::Local { revision: 4, .. },
            why,
        } => assert!(
            why.contains("no etcd endpoints are configured")
                && why.contains("intact at revision 4, and there is no whole backup"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
    assert!(matches!(decide(&o, &policy(false)), Decision::Wait(w) if w.contains("not replaced")));
    o.backup = Ok(backup(true));
    o.local = Some(local(LocalState::Intact { revision: 9 }));
    assert!(starts_local(&decide(&o, &policy(true))));
    o.local = Some(local(LocalState::Missing));
    assert!(restores_backup(&decide(&o, &policy(true))));
    o.backup = Err("no backup".into());
    assert!(
        matches!(decide(&o, &policy(true)), Decision::NoSource(w) if w.contains("has no member/snap/db, and no backup"))
    );
}

/// slow-etcd: a static pod on this node runs etcd on the data dir (its checkpoint,
/// starting late): waited for, never started a second time, never restored over.
#[test]
fn a_static_pod_of_etcd_is_waited_for() {
    for etcd in [None, Some(Err("connection refused".to_string()))] {
        let mut o = down_after_grace();
        o.etcd = etcd;
        o.backup = Ok(backup(true));
        o.local = Some(LocalData {
            etcd_pod: Some("kubeboot-checkpoint_kube-system_etcd-a.json".into()),
            ..local(LocalState::Intact { revision: 12 })
        });
        match decide(&o, &policy(true)) {
            Decision::Wait(why) => assert!(
                why.contains("the static pod kubeboot-checkpoint_kube-system_etcd-a.json on this node runs etcd on it"),
                "{why}"
            ),
            d => panic!("{d:?}"),
        }
    }
}

/// A backup from before the last restore this node knows of is refused, even where
/// policy allows restores; one taken after it is restored.
#[test]
fn a_backup_from_before_the_restore_marker_is_refused() {
    let mut o = down_after_grace();
    o.etcd = Some(Err("connection refused".into()));
    o.backup = Ok(backup(true));
    o.marker = Some(Marker {
        node: "master-2".into(),
        backup_revision: 5,
        restored_at: "2026-12-02T13:00:00Z".into(),
        cluster_revision: 10_005,
    });
    match decide(&o, &policy(true)) {
        Decision::Refused(why) => assert!(
            why.contains(
                "(revision 9) is from before the restore of backup revision 5 by master-2"
            ) && why.contains("nothing was restored"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
    o.backup = Ok(Backup {
        revision: 10_006,
        ..backup(true)
    });
    assert!(restores_backup(&decide(&o, &policy(true))));
}

/// This node's clock 5 minutes off changes nothing in the decision: the components'
/// states arrive judged by the api-server's clock (components_tests), and a healthy
/// control plane is healthy.
#[test]
fn a_skewed_clock_on_a_healthy_cluster_recovers_nothing() {
    let mut o = down_after_grace();
    o.apiserver = Apiserver::Up {
        unready: vec![],
        gone: vec![],
    };
    o.etcd = Some(Ok(()));
    o.backup = Ok(backup(true));
    assert_eq!(decide(&o, &policy(true)), Decision::Healthy);
}

#[test]
fn a_refusal_by_the_apiserver_is_a_configuration_error_not_a_dead_apiserver() {
    let mut o = down_after_grace();
    o.apiserver = Apiserver::Denied("/api/v1: list nodes: 403 Forbidden".into());
    o.etcd = Some(Ok(()));
    o.backup = Ok(backup(true));
    match decide(&o, &policy(true)) {
        Decision::Misconfigured(why) => assert!(
            why.contains("403 Forbidden") && why.contains("configuration error"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
    o.elapsed = Duration::ZERO;
    assert!(
        matches!(decide(&o, &policy(true)), Decision::Wait(w) if w.contains("refuses kubeboot's credentials"))
    );
}

#[test]
fn unready_components_with_pods_are_reported_not_recovered() {
    let mut o = down_after_grace();
    o.apiserver = Apiserver::Up {
        unready: vec!["kube-system/pod-checkpointer: ckpt-a on m1: ImagePullBackOff".into()],
        gone: vec![],
    };
    o.etcd = Some(Ok(()));
    o.backup = Ok(backup(true));
    match decide(&o, &policy(true)) {
        Decision::Unhealthy(why) => assert!(
            why.contains("kube-system/pod-checkpointer: ckpt-a on m1: ImagePullBackOff")
                && why.contains("reported, not recovered"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
    // Within the grace: waited for.
    o.elapsed = Duration::ZERO;
    assert!(
        matches!(decide(&o, &policy(true)), Decision::Wait(w) if w.contains("ImagePullBackOff"))
    );
}

#[test]
fn a_gone_component_is_recovered_even_beside_unready_ones() {
    let mut o = down_after_grace();
    o.apiserver = Apiserver::Up {
        unready: vec!["kube-system/pod-checkpointer: ckpt-a on m1: ImagePullBackOff".into()],
        gone: vec!["kube-system/kube-scheduler: no pod of it on a live node".into()],
    };
    match decide(&o, &policy(false)) {
        Decision::Recover {
            via: Via::Apiserver,
            why,
        } => assert!(
            why.contains("nothing runs of kube-system/kube-scheduler")
                && why.contains("also not Ready, with pods: kube-system/pod-checkpointer"),
            "{why}"
        ),
        d => panic!("{d:?}"),
    }
}

proptest::proptest! {
    /// No observation with a reachable api-server whose components merely are
    /// un-Ready (none gone) ever leads to a recovery, whatever else was seen.
    #[test]
    fn a_reachable_apiserver_with_unready_components_is_never_recovered(
        elapsed in 0u64..600,
        kubelet_state in 0u8..3,
        etcd in 0u8..3,
        has_backup: bool, self_hosted: bool, allowed: bool,
        unready in proptest::collection::vec("[a-z/: -]{0,20}", 0..4),
        local_state in 0u8..3,
    ) {
        let o = Observation {
            elapsed: Duration::from_secs(elapsed),
            kubelet: match kubelet_state {
                0 => Kubelet::Healthy,
                1 => Kubelet::Down("down".into()),
                _ => Kubelet::Failed("failed".into()),
            },
            apiserver: Apiserver::Up { unready, gone: vec![] },
            etcd: match etcd { 0 => None, 1 => Some(Err("down".into())), _ => Some(Ok(())) },
            backup: if has_backup { Ok(backup(self_hosted)) } else { Err("none".into()) },
            local: Some(local(match local_state {
                0 => LocalState::Missing,
                1 => LocalState::Unreadable("bad".into()),
                _ => LocalState::Intact { revision: 1 },
            })),
            marker: None,
        };
        let d = decide(&o, &policy(allowed));
        proptest::prop_assert!(!matches!(d, Decision::Recover { .. }), "{d:?}");
    }
}

proptest::proptest! {
    /// No observation with an intact local data dir at least as new as the newest
    /// backup (or with no backup at all) ever leads to a restore, whatever the restore
    /// marker says; it is started only where policy allows and no static pod of etcd
    /// will start it.
    #[test]
    fn intact_newer_local_data_is_never_restored_over(
        elapsed in 0u64..600,
        kubelet_state in 0u8..3,
        api in 0u8..4,
        etcd in 0u8..3,
        self_hosted: bool, allowed: bool,
        backup_revision in 0i64..1_000_000,
        ahead in 0i64..1_000_000,
        static_pod: bool,
        has_backup: bool,
        marker_revision in proptest::option::of(0i64..3_000_000),
    ) {
        let o = Observation {
            elapsed: Duration::from_secs(elapsed),
            kubelet: match kubelet_state {
                0 => Kubelet::Healthy,
                1 => Kubelet::Down("down".into()),
                _ => Kubelet::Failed("failed".into()),
            },
            apiserver: match api {
                0 => Apiserver::Down("refused".into()),
                1 => Apiserver::Up { unready: vec![], gone: vec!["x".into()] },
                2 => Apiserver::Up { unready: vec![], gone: vec![] },
                _ => Apiserver::Denied("403".into()),
            },
            etcd: match etcd { 0 => None, 1 => Some(Err("down".into())), _ => Some(Ok(())) },
            backup: if has_backup {
                Ok(Backup { revision: backup_revision, ..backup(self_hosted) })
            } else {
                Err("none".into())
            },
            local: Some(LocalData {
                etcd_pod: static_pod.then(|| "etcd.yaml".to_string()),
                ..local(LocalState::Intact { revision: backup_revision + ahead })
            }),
            marker: marker_revision.map(|r| Marker {
                node: "master-2".into(),
                backup_revision: 1,
                restored_at: "2026-12-02T13:00:00Z".into(),
                cluster_revision: r,
            }),
        };
        let d = decide(&o, &policy(allowed));
        proptest::prop_assert!(!restores_backup(&d), "{d:?}");
        if starts_local(&d) {
            proptest::prop_assert!(allowed && !static_pod, "{d:?}");
        }
    }
}

proptest::proptest! {
    /// Whatever was observed: within the grace nothing is recovered, refused or
    /// failed; a backup is restored only when allowed and self-hosted; a healthy
    /// control plane is never recovered.
    #[test]
    fn the_safety_rules_hold(
        elapsed in 0u64..600,
        kubelet_state in 0u8..3,
        api in 0u8..4,
        etcd in 0u8..3,
        has_backup: bool, self_hosted: bool, allowed: bool,
    ) {
        let o = Observation {
            elapsed: Duration::from_secs(elapsed),
            kubelet: match kubelet_state {
                0 => Kubelet::Healthy,
                1 => Kubelet::Down("down".into()),
                _ => Kubelet::Failed("failed".into()),
            },
            apiserver: match api {
                0 => Apiserver::Down("refused".into()),
                1 => Apiserver::Up { unready: vec![], gone: vec!["x".into()] },
                2 => Apiserver::Up { unready: vec![], gone: vec![] },
                _ => Apiserver::Denied("403".into()),
            },
            etcd: match etcd { 0 => None, 1 => Some(Err("down".into())), _ => Some(Ok(())) },
            backup: if has_backup { Ok(backup(self_hosted)) } else { Err("none".into()) },
            local: Some(local(LocalState::Missing)),
            marker: None,
        };
        let d = decide(&o, &policy(allowed));
        if Duration::from_secs(elapsed) < GRACE && kubelet_state != 2 {
            proptest::prop_assert!(matches!(d, Decision::Wait(_) | Decision::Healthy), "{d:?}");
        }
        if !matches!(o.kubelet, Kubelet::Healthy) {
            proptest::prop_assert!(!matches!(d, Decision::Recover { .. } | Decision::Healthy), "{d:?}");
        }
        if let Decision::Recover { via: Via::Backup(_), .. } = d {
            proptest::prop_assert!(allowed && self_hosted);
        }
        if api == 3 {
            proptest::prop_assert!(matches!(d, Decision::Wait(_) | Decision::Misconfigured(_) | Decision::Failed(_)), "{d:?}");
        }
        if api == 2 && kubelet_state == 0 {
            proptest::prop_assert_eq!(d, Decision::Healthy);
        }
    }
}
