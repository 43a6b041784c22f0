//! When the checkpointer gives up its lock: the api-server has refused its credential
//! with 401 Unauthorized for too long.
//!
//! Checkpointed tokens are short-lived (issue 12, finding 4), and so is the one the
//! checkpointer's own checkpoint runs with: after an outage longer than its lifetime the
//! returning api-server answers it 401, and a holder that kept its lock would keep every
//! other checkpointer on the node (the DaemonSet pod the kubelet starts with a fresh
//! token, the systemd unit with its kubeconfig) in standby for ever, with no checkpoint
//! refreshed. So a 401 that persists for `--unauthorized-timeout` and at least
//! [`MIN_POLLS`] polls in a row makes it release the lock and exit non-zero: a standby
//! takes the lock, and systemd or the kubelet restarts this one with whatever credential
//! it has by then.
//!
//! Only a 401 counts: 403 is a credential that authenticated (RBAC may still be loading
//! after a restart), and any other answer of the api-server shows it accepted the
//! credential. No answer at all (the api-server down, a timeout) says nothing about the
//! credential, so it neither counts nor ends a run of 401s. This is the pure decision;
//! the daemon feeds it the answer of each cycle's pod list.

use std::time::{Duration, Instant};

/// Fewer 401s in a row than this never give up, however long they took: one late
/// answer after a long pause is not a persistent refusal.
pub const MIN_POLLS: u32 = 3;

/// How the api-server answered one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 401: the credential did not authenticate.
    Unauthorized,
    /// Any other HTTP answer (a list, 403, 404, 5xx): the credential was not refused.
    Answered,
    /// No HTTP answer (refused connection, timeout, TLS failure).
    Silent,
}

/// A run of 401s, counted from its first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refusals {
    since: Option<Instant>,
    polls: u32,
}

/// Why the lock is given up: how long and how many polls the 401s lasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiveUp {
    pub lasted: Duration,
    pub polls: u32,
}

impl Refusals {
    /// Notes one poll's answer at `now`; `Some` when the 401s have lasted `limit` (and
    /// [`MIN_POLLS`]). A zero `limit` never gives up (the operator turned it off).
    pub fn note(&mut self, answer: Answer, now: Instant, limit: Duration) -> Option<GiveUp> {
        match answer {
            Answer::Answered => *self = Refusals::default(),
            Answer::Silent => {}
            Answer::Unauthorized => {
                let since = *self.since.get_or_insert(now);
                self.polls = self.polls.saturating_add(1);
                let lasted = now.saturating_duration_since(since);
                if !limit.is_zero() && lasted >= limit && self.polls >= MIN_POLLS {
                    return Some(GiveUp {
                        lasted,
                        polls: self.polls,
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(120);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn persistent_401s_give_up_after_the_limit_and_three_polls() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        for s in (0..120).step_by(5) {
            assert_eq!(r.note(Answer::Unauthorized, at(t0, s), LIMIT), None, "{s}");
        }
        let g = r.note(Answer::Unauthorized, at(t0, 120), LIMIT);
        assert_eq!(
            g,
            Some(GiveUp {
                lasted: LIMIT,
                polls: 25
            })
        );
    }

    #[test]
    fn too_few_polls_never_give_up_however_long() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert_eq!(r.note(Answer::Unauthorized, at(t0, 0), LIMIT), None);
        assert_eq!(r.note(Answer::Unauthorized, at(t0, 1000), LIMIT), None);
        assert!(r.note(Answer::Unauthorized, at(t0, 1001), LIMIT).is_some());
    }

    #[test]
    fn any_other_answer_ends_the_run_and_silence_neither_counts_nor_ends_it() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        r.note(Answer::Unauthorized, at(t0, 0), LIMIT);
        r.note(Answer::Unauthorized, at(t0, 60), LIMIT);
        // A 403 (or a list) is a credential that authenticated: start again.
        r.note(Answer::Answered, at(t0, 61), LIMIT);
        assert_eq!(r.note(Answer::Unauthorized, at(t0, 130), LIMIT), None);
        assert_eq!(r.note(Answer::Unauthorized, at(t0, 200), LIMIT), None);
        // The api-server gone again in between: the run of 401s goes on.
        for s in 201..400 {
            assert_eq!(r.note(Answer::Silent, at(t0, s), LIMIT), None);
        }
        let g = r.note(Answer::Unauthorized, at(t0, 400), LIMIT);
        assert_eq!(
            g,
            Some(GiveUp {
                lasted: Duration::from_secs(270),
                polls: 3
            })
        );
    }

    #[test]
    fn a_zero_limit_never_gives_up() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        for s in 0..100 {
            assert_eq!(
                r.note(Answer::Unauthorized, at(t0, s * 60), Duration::ZERO),
                None
            );
        }
    }
}
