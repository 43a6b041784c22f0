//! What the checkpointer tells the operator: log lines that say each problem once (a
//! loop that logs every error every 5 s buries the one that mattered), when the
//! api-server and the kubelet answer again, the `STATUS=` line.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::state::{Action, Active, OnDisk, PodKey};

/// How long a persisting error stays quiet before it is logged again.
pub const REPEAT: Duration = Duration::from_secs(30 * 60);
/// Logs each distinct message once, again after [`REPEAT`] if it persists.
#[derive(Default)]
pub struct Once {
    /// message → (last logged, last seen)
    seen: BTreeMap<String, (Instant, Instant)>,
}

impl Once {
    /// Whether `msg` should be logged now; records it.
    pub fn fresh(&mut self, msg: &str, now: Instant) -> bool {
        self.seen
            .retain(|_, (_, seen)| now.duration_since(*seen) < REPEAT);
        match self.seen.get_mut(msg) {
            Some((logged, seen)) => {
                *seen = now;
                if now.duration_since(*logged) >= REPEAT {
                    *logged = now;
                    return true;
                }
                false
            }
            None => {
                self.seen.insert(msg.to_string(), (now, now));
                true
            }
        }
    }

    /// Forgets `msg`: the problem is over, and its return is news.
    pub fn forget(&mut self, msg: &str) {
        self.seen.remove(msg);
    }

    pub fn warn(&mut self, msg: &str) {
        if self.fresh(msg, Instant::now()) {
            tracing::warn!("{msg}");
        }
    }
}

/// Whether a source answered last, and its last error.
#[derive(Default)]
pub struct Health {
    pub up: Option<bool>,
    error: Option<String>,
}

impl Health {
    /// Notes whether the source answered; its errors are logged once per outage.
    pub fn note(&mut self, what: &str, result: Result<(), &str>, log: &mut Once) {
        match result {
            Ok(()) => {
                if self.up == Some(false) {
                    tracing::info!("{what} answers again");
                }
                if let Some(e) = self.error.take() {
                    log.forget(&e);
                }
                self.up = Some(true);
            }
            Err(e) => {
                self.up = Some(false);
                log.warn(e);
                self.error = Some(e.to_string());
            }
        }
    }
}

pub fn what(a: &Action) -> String {
    let verb = match a {
        Action::Save { .. } => "saving",
        Action::Activate { .. } => "activating",
        Action::Deactivate { .. } => "deactivating",
        Action::Remove { .. } => "removing",
    };
    format!("{verb} the checkpoint of {}", a.key())
}

pub fn done(a: &Action) -> String {
    format!("{} the checkpoint of {}", done_word(a), a.key())
}

/// What an action did, in one word: the journal's `KUBEBOOT_OUTCOME`.
pub fn done_word(a: &Action) -> &'static str {
    match a {
        Action::Save { .. } => "saved",
        Action::Activate { .. } => "activated",
        Action::Deactivate { .. } => "deactivated",
        Action::Remove { .. } => "removed",
    }
}

/// The one-line `STATUS=`: what is held, what is active, what answers.
#[must_use]
pub fn status(
    disk: &BTreeMap<PodKey, OnDisk>,
    api_up: Option<bool>,
    runtime_up: Option<bool>,
) -> String {
    let active: BTreeSet<String> = disk
        .iter()
        .filter(|(_, d)| d.active != Active::No)
        .map(|(k, _)| k.to_string())
        .collect();
    let word = |up: Option<bool>| match up {
        Some(true) => "up",
        Some(false) => "unreachable",
        None => "unknown",
    };
    let mut line = format!("{} checkpoints, {} active", disk.len(), active.len());
    if !active.is_empty() {
        line.push_str(&format!(
            " ({})",
            active.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    line.push_str(&format!(
        "; api-server {}; runtime {}",
        word(api_up),
        word(runtime_up)
    ));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_logged_once_then_again_only_after_repeat() {
        let mut once = Once::default();
        let t0 = Instant::now();
        assert!(once.fresh("api down", t0));
        assert!(!once.fresh("api down", t0 + Duration::from_secs(5)));
        assert!(once.fresh("other", t0 + Duration::from_secs(5)));
        assert!(!once.fresh("api down", t0 + REPEAT - Duration::from_secs(1)));
        assert!(once.fresh("api down", t0 + REPEAT + Duration::from_secs(1)));
        // Forgotten once unseen for REPEAT: logged as new when it comes back.
        let later = t0 + 3 * REPEAT;
        assert!(once.fresh("other", later));
        assert_eq!(once.seen.len(), 1);
    }

    #[test]
    fn a_new_outage_of_a_source_is_logged_again() {
        let mut once = Once::default();
        let mut api = Health::default();
        let down = "listing pods: connection refused";
        api.note("the api-server", Err(down), &mut once);
        assert_eq!(api.up, Some(false));
        assert!(!once.fresh(down, Instant::now()), "logged, so quiet now");
        api.note("the api-server", Ok(()), &mut once);
        assert_eq!(api.up, Some(true));
        assert!(once.fresh(down, Instant::now()), "the next outage is news");
    }

    #[test]
    fn status_line_names_active_checkpoints() {
        let mut disk = BTreeMap::new();
        disk.insert(
            PodKey::new("kube-system", "api-a"),
            OnDisk {
                saved: None,
                active: Active::Current,
            },
        );
        disk.insert(PodKey::new("default", "web"), OnDisk::default());
        assert_eq!(
            status(&disk, Some(false), Some(true)),
            "2 checkpoints, 1 active (kube-system/api-a); api-server unreachable; runtime up"
        );
        assert_eq!(
            status(&BTreeMap::new(), None, None),
            "0 checkpoints, 0 active; api-server unknown; runtime unknown"
        );
    }
}
