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
    }
}

#[test]
fn a_complete_control_plane_is_healthy_at_once() {
    let o = Observation {
        elapsed: Duration::ZERO,
        apiserver: Apiserver::Up { missing: vec![] },
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
        missing: vec!["kube-system/kube-scheduler: no pod on a live node".into()],
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
fn missing_components_are_recovered_through_the_apiserver() {
    let mut o = down_after_grace();
    o.apiserver = Apiserver::Up {
        missing: vec!["kube-system/kube-scheduler: no pod on a live node".into()],
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

proptest::proptest! {
    /// Whatever was observed: within the grace nothing is recovered, refused or
    /// failed; a backup is restored only when allowed and self-hosted; a healthy
    /// control plane is never recovered.
    #[test]
    fn the_safety_rules_hold(
        elapsed in 0u64..600,
        kubelet_state in 0u8..3,
        api in 0u8..3,
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
                1 => Apiserver::Up { missing: vec!["x".into()] },
                _ => Apiserver::Up { missing: vec![] },
            },
            etcd: match etcd { 0 => None, 1 => Some(Err("down".into())), _ => Some(Ok(())) },
            backup: if has_backup { Ok(backup(self_hosted)) } else { Err("none".into()) },
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
        if api == 2 && kubelet_state == 0 {
            proptest::prop_assert_eq!(d, Decision::Healthy);
        }
    }
}
