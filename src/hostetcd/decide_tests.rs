use super::*;
use std::path::PathBuf;

fn member(name: &str) -> Member {
    let n: u8 = name.trim_start_matches("m").parse().unwrap();
    Member {
        name: name.into(),
        data_dir: PathBuf::from("/var/lib/etcd/default"),
        peer_url: format!("http://10.0.0.{n}:2380"),
        client_urls: vec![format!("http://10.0.0.{n}:2379")],
        initial_cluster: (1..=3)
            .map(|i| (format!("m{i}"), format!("http://10.0.0.{i}:2380")))
            .collect(),
        token: None,
    }
}

fn view(
    endpoint: &str,
    id: u64,
    names: &[&str],
    revision: i64,
    restored_by: Option<&str>,
) -> ClusterView {
    ClusterView {
        endpoint: endpoint.into(),
        cluster_id: id,
        members: names
            .iter()
            .enumerate()
            .map(|(i, n)| MemberView {
                id: 100 + i as u64,
                name: n.to_string(),
                peer_urls: vec![format!("http://10.0.0.{}:2380", n.trim_start_matches('m'))],
            })
            .collect(),
        revision,
        restored: restored_by.map(|n| Restored {
            node: n.into(),
            backup_revision: BACKUP,
        }),
    }
}

fn obs<'a>(
    me: &'a Member,
    local: Result<ClusterView, String>,
    peers: Vec<ClusterView>,
    data: LocalState,
    backup: Option<i64>,
    may_restore: bool,
) -> Observed<'a> {
    Observed {
        me,
        local,
        peers,
        data,
        backup_revision: backup,
        may_restore,
    }
}

fn down() -> Result<ClusterView, String> {
    Err("connection refused".into())
}

const BACKUP: i64 = 900;

#[test]
fn a_member_in_the_cluster_is_healthy() {
    let me = member("m1");
    let c = view("m1", 7, &["m1", "m2", "m3"], 5000, None);
    let a = decide(&obs(
        &me,
        Ok(c.clone()),
        vec![c],
        LocalState::Intact { revision: 5000 },
        Some(BACKUP),
        true,
    ));
    assert!(matches!(a, Action::Healthy(_)), "{a:?}");
}

#[test]
fn power_loss_with_data_intact_waits_for_quorum_and_never_restores() {
    let me = member("m1");
    for data in [
        LocalState::Intact { revision: 5000 },
        LocalState::Intact { revision: BACKUP },
    ] {
        let a = decide(&obs(&me, down(), vec![], data, Some(BACKUP), true));
        assert!(
            matches!(a, Action::Wait(ref w) if w.contains("never restoring over it")),
            "{a:?}"
        );
    }
}

#[test]
fn the_policy_node_restores_only_when_its_data_is_gone_or_older() {
    let me = member("m1");
    for data in [
        LocalState::Missing,
        LocalState::Unreadable("bad page".into()),
        LocalState::Intact { revision: 10 },
    ] {
        let a = decide(&obs(&me, down(), vec![], data.clone(), Some(BACKUP), true));
        assert!(matches!(a, Action::Restore(_)), "{data:?}: {a:?}");
        let a = decide(&obs(&me, down(), vec![], data.clone(), Some(BACKUP), false));
        assert!(
            matches!(a, Action::Wait(ref w) if w.contains("the policy names")),
            "{a:?}"
        );
        let a = decide(&obs(&me, down(), vec![], data, None, true));
        assert!(
            !matches!(a, Action::Restore(_) | Action::Join { .. }),
            "{a:?}"
        );
    }
}

/// Wiped data dirs with `initial-cluster-state=new` form a new, empty cluster: it is
/// older than the backup, so it is restored over (policy node) or left (others).
#[test]
fn an_empty_cluster_formed_over_lost_data_yields() {
    let me = member("m1");
    let empty = view("m1", 9, &["m1", "m2", "m3"], 3, None);
    let a = decide(&obs(
        &me,
        Ok(empty.clone()),
        vec![empty.clone()],
        LocalState::Intact { revision: 3 },
        Some(BACKUP),
        true,
    ));
    assert!(
        matches!(a, Action::Restore(ref w) if w.contains("older than the newest backup")),
        "{a:?}"
    );
    // m2, in the empty cluster, once m1's restore answers: joins it.
    let me2 = member("m2");
    let restored = view("m1", 11, &["m1"], BACKUP + 1_000_000, Some("m1"));
    let a = decide(&obs(
        &me2,
        Ok(view("m2", 9, &["m1", "m2", "m3"], 3, None)),
        vec![restored],
        LocalState::Intact { revision: 3 },
        Some(BACKUP),
        false,
    ));
    assert!(
        matches!(a, Action::Join { ref endpoint, replace: None, .. } if endpoint == "m1"),
        "{a:?}"
    );
}

#[test]
fn a_member_with_lost_data_rejoins_replacing_its_old_entry() {
    let me = member("m2");
    let c = view("m1", 7, &["m1", "m2", "m3"], 5000, None);
    let a = decide(&obs(
        &me,
        down(),
        vec![c.clone()],
        LocalState::Missing,
        Some(BACKUP),
        false,
    ));
    assert_eq!(
        a,
        Action::Join {
            endpoint: "m1".into(),
            replace: Some(101),
            why: a_why(&a)
        }
    );
    // Down with intact data: its unit brings it back; nothing moved.
    let a = decide(&obs(
        &me,
        down(),
        vec![c],
        LocalState::Intact { revision: 4000 },
        Some(BACKUP),
        false,
    ));
    assert!(matches!(a, Action::Wait(_)), "{a:?}");
}

fn a_why(a: &Action) -> String {
    match a {
        Action::Join { why, .. } => why.clone(),
        _ => String::new(),
    }
}

#[test]
fn local_data_newer_than_the_only_cluster_is_never_moved() {
    let me = member("m3");
    let restored = view("m1", 11, &["m1"], 2000, Some("m1"));
    let a = decide(&obs(
        &me,
        down(),
        vec![restored],
        LocalState::Intact { revision: 7000 },
        Some(BACKUP),
        false,
    ));
    assert!(
        matches!(a, Action::Refuse(ref w) if w.contains("is newer than")),
        "{a:?}"
    );
}

/// Issue 11's `two-restorers`: both masters (wrongly) allowed restore at the same moment;
/// each sees the other's one-member cluster; exactly one of them yields.
#[test]
fn two_restorers_end_with_one_past() {
    let (m1, m2) = (member("m1"), member("m2"));
    let c1 = view("m1", 11, &["m1"], BACKUP + 1_000_000, Some("m1"));
    let c2 = view("m2", 12, &["m2"], BACKUP + 1_000_000, Some("m2"));
    let a1 = decide(&obs(
        &m1,
        Ok(c1.clone()),
        vec![c2.clone()],
        LocalState::Intact {
            revision: c1.revision,
        },
        Some(BACKUP),
        true,
    ));
    let a2 = decide(&obs(
        &m2,
        Ok(c2.clone()),
        vec![c1.clone()],
        LocalState::Intact {
            revision: c2.revision,
        },
        Some(BACKUP),
        true,
    ));
    assert!(
        matches!(a1, Action::Wait(ref w) if w.contains("yield to it") && w.contains("waiting for their members to join")),
        "{a1:?}"
    );
    assert!(
        matches!(a2, Action::Join { ref endpoint, .. } if endpoint == "m1"),
        "{a2:?}"
    );
}

/// An original cluster at or above the backup came back after a restore was made: the
/// restore is the older past and yields.
#[test]
fn an_original_cluster_beats_a_restore() {
    let m1 = member("m1");
    let restored = view("m1", 11, &["m1"], BACKUP + 1_000_000, Some("m1"));
    let original = view("m2", 7, &["m1", "m2", "m3"], 5000, None);
    let a = decide(&obs(
        &m1,
        Ok(restored),
        vec![original],
        LocalState::Intact { revision: 0 },
        Some(BACKUP),
        true,
    ));
    assert!(
        matches!(a, Action::Join { ref endpoint, .. } if endpoint == "m2"),
        "{a:?}"
    );
}

#[test]
fn two_original_clusters_are_refused() {
    let m1 = member("m1");
    let a = view("m1", 7, &["m1"], 5000, None);
    let b = view("m2", 8, &["m2", "m3"], 6000, None);
    let d = decide(&obs(
        &m1,
        Ok(a),
        vec![b],
        LocalState::Intact { revision: 5000 },
        Some(BACKUP),
        true,
    ));
    assert!(
        matches!(d, Action::Refuse(ref w) if w.contains("split brain")),
        "{d:?}"
    );
}

/// The property issue 11 asks for, over the host-run cluster too: no input with intact
/// local data at or above the newest backup moves it (no Restore, no Join), unless a
/// cluster at or above that data answers.
#[test]
fn intact_newest_local_data_is_never_replaced_by_an_older_past() {
    let me = member("m1");
    let clusters = [
        None,
        Some(view("m2", 9, &["m1", "m2", "m3"], 3, None)),
        Some(view("m2", 11, &["m2"], BACKUP + 5, Some("m2"))),
    ];
    for rev in [BACKUP, BACKUP + 1, BACKUP + 10_000_000] {
        for c in &clusters {
            for may in [true, false] {
                let peers: Vec<_> = c.iter().cloned().collect();
                let a = decide(&obs(
                    &me,
                    down(),
                    peers,
                    LocalState::Intact { revision: rev },
                    Some(BACKUP),
                    may,
                ));
                let moves = matches!(a, Action::Restore(_) | Action::Join { .. });
                let newer_cluster = c.as_ref().is_some_and(|c| c.content_revision() >= rev);
                assert!(
                    !moves || newer_cluster,
                    "rev {rev}, {c:?}, may {may}: {a:?}"
                );
            }
        }
    }
}
