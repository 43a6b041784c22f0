//! `decide` against client-go's rules, without servers.

use super::*;

fn election(id: &str) -> Election {
    Election {
        namespace: "kube-system".into(),
        name: "kube-controller-manager".into(),
        identity: id.into(),
        timing: LeaderFlags::default(),
    }
}

fn held_by(id: &str, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(id.into()),
        lease_duration_seconds: Some(15),
        acquire_time: Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)),
        renew_time: Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

#[test]
fn missing_lease_is_created_with_us_as_holder() {
    let t0 = Instant::now();
    let wall = jiff::Timestamp::now();
    let Step::Create(s) = decide(&election("a"), None, t0, t0, wall) else {
        panic!("expected create");
    };
    assert_eq!(s.holder_identity.as_deref(), Some("a"));
    assert_eq!(s.lease_duration_seconds, Some(15));
    assert_eq!(s.lease_transitions, Some(0));
    assert_eq!(s.renew_time, Some(MicroTime(wall)));
}

#[test]
fn a_live_lease_of_another_holder_is_respected_until_it_expires() {
    let t0 = Instant::now();
    let wall = jiff::Timestamp::now();
    let other = held_by("b", 2);
    let e = election("a");
    assert_eq!(
        decide(&e, Some(&other), t0, t0 + Duration::from_secs(14), wall),
        Step::Wait
    );
    let Step::Update(s) = decide(&e, Some(&other), t0, t0 + Duration::from_secs(15), wall) else {
        panic!("expected a takeover");
    };
    assert_eq!(s.holder_identity.as_deref(), Some("a"));
    assert_eq!(s.lease_transitions, Some(3));
    assert_eq!(s.acquire_time, Some(MicroTime(wall)));
}

#[test]
fn renewal_keeps_acquire_time_and_transitions() {
    let t0 = Instant::now();
    let wall = jiff::Timestamp::now();
    let Step::Update(s) = decide(&election("a"), Some(&held_by("a", 4)), t0, t0, wall) else {
        panic!("expected a renewal");
    };
    assert_eq!(s.lease_transitions, Some(4));
    assert_eq!(s.acquire_time, Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)));
    assert_eq!(s.renew_time, Some(MicroTime(wall)));
}

#[test]
fn a_released_lease_is_taken_at_once() {
    let t0 = Instant::now();
    let released = LeaseSpec {
        holder_identity: Some(String::new()),
        ..held_by("", 1)
    };
    let step = decide(
        &election("a"),
        Some(&released),
        t0,
        t0,
        jiff::Timestamp::now(),
    );
    assert!(matches!(step, Step::Update(_)), "{step:?}");
}
