//! Crash-loop back-off, kept as the kubelet keeps it: one table for the whole kubelet,
//! an entry per container *content*, consulted against the container's last exit.
//!
//! Upstream (read, not copied):
//! - `pkg/kubelet/kuberuntime/kuberuntime_manager.go` `doBackOff`: when the container has
//!   an exited instance, it is in back-off if `IsInBackOffSince(key, finishedAt)`; then it
//!   waits with reason `CrashLoopBackOff` and the message
//!   `back-off <Get(key)> restarting failed container=<name> pod=<name>_<ns>(<uid>)`
//!   (`format.Pod`); otherwise `Next(key, finishedAt)` and the container starts. So the
//!   first exit restarts at once, and the waits are 10 s, 20 s, 40 s, … 300 s.
//! - `kuberuntime/helpers.go` `getStableKey`: `name_namespace_uid_container_hash`, the
//!   hash covering the container spec, so a changed container starts afresh while a static
//!   pod put back with the same content (same UID) keeps its back-off.
//! - client-go `util/flowcontrol/backoff.go` `Next` (no entry or expired: initial; else
//!   double, capped at max; `lastUpdate = now`) and `IsInBackOffSince`
//!   (`now - eventTime < backoff` unless expired).
//! - `pkg/kubelet/kubelet.go` `NewMainKubelet`/`newCrashLoopBackOff`: initial
//!   `initialCrashLoopBackOff` 10 s, max `MaxCrashLoopBackOff` 300 s, and `HasExpiredFunc`
//!   replaced by a fixed `eventTime - lastUpdate > 600 s` (client-go's default is
//!   `2 × max`, also 600 s at the default max): the count resets only when the container
//!   *ran* more than 10 minutes after its last restart. `ReduceDefaultCrashLoopBackOffDecay`
//!   (1 s / 60 s) is alpha and off through v1.36; `KubeletCrashLoopBackOffMax` (beta, on
//!   since v1.35) only applies `crashLoopBackOff.maxContainerRestartPeriod`, which is
//!   unset by default. So the default is 10 s doubling to 300 s.
//!
//! *Simplified:* upstream notices the end of a back-off at the pod worker's next retry
//! (every 10–15 s, `backOffPeriod` with jitter); the double restarts at the earliest
//! moment upstream could. The table lives in memory, as upstream's does: a kubelet restart
//! forgets it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

/// `initialCrashLoopBackOff` and `MaxCrashLoopBackOff` (`pkg/kubelet/kubelet.go`).
pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// The kubelet's `HasExpiredFunc`: a run this long after the last restart resets the count.
pub const EXPIRE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

/// The kubelet-wide back-off table (`klet.crashLoopBackOff`).
#[derive(Debug)]
pub struct BackOff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl BackOff {
    /// As `newCrashLoopBackOff`: a max below the initial delay lowers the initial delay.
    pub fn new(initial: Duration, max: Duration) -> BackOff {
        BackOff {
            initial: initial.min(max),
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(event: Instant, last_update: Instant) -> bool {
        event.saturating_duration_since(last_update) > EXPIRE
    }

    /// `Get`: the current back-off of `key` (zero without an entry).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    /// `IsInBackOffSince(key, finished)`: how long the container must still wait, if at all.
    pub fn remaining(&self, key: &str, finished: Instant, now: Instant) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if Self::expired(finished, e.last_update) {
            return None;
        }
        let waited = now.saturating_duration_since(finished);
        (waited < e.backoff).then(|| e.backoff - waited)
    }

    /// `Next(key, finished)`, called as the container is started again after an exit.
    pub fn next(&mut self, key: &str, finished: Instant, now: Instant) {
        let backoff = match self.entries.get(key) {
            Some(e) if !Self::expired(finished, e.last_update) => {
                e.backoff.saturating_mul(2).min(self.max)
            }
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }
}

/// `getStableKey`: pod name, namespace, UID, container name and a hash of the container.
pub fn stable_key(pod: &Pod, c: &Container) -> String {
    let mut h = DefaultHasher::new();
    serde_json::to_string(c).unwrap_or_default().hash(&mut h);
    format!(
        "{}_{}_{}_{}_{:x}",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or(""),
        c.name,
        h.finish()
    )
}

/// The waiting message of `doBackOff`, with `format.Pod`'s `name_namespace(uid)`.
pub fn message(backoff: Duration, container: &str, pod: &Pod) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={}_{}({})",
        go_duration(backoff),
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Go's `time.Duration.String` for whole-second and millisecond values: `10s`, `1m20s`,
/// `5m0s`, `1h0m0s`, `500ms`.
pub fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let ms = d.subsec_millis();
    let secs = if ms == 0 {
        format!("{}s", d.as_secs() % 60)
    } else {
        let frac = format!("{ms:03}");
        format!("{}.{}s", d.as_secs() % 60, frac.trim_end_matches('0'))
    };
    let (h, m) = (d.as_secs() / 3600, d.as_secs() / 60 % 60);
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Crashes at once after every restart: the waits are 0, 10, 20, 40, 80, 160, 300, 300.
    #[test]
    fn doubles_from_ten_seconds_to_the_cap() {
        let mut b = BackOff::new(INITIAL, MAX);
        let t0 = Instant::now();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let finished = now + S; // ran one second
            let wait = b.remaining("k", finished, finished).unwrap_or_default();
            waits.push(wait.as_secs());
            now = finished + wait;
            assert_eq!(b.remaining("k", finished, now), None, "waited enough");
            b.next("k", finished, now);
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.get("k"), MAX);
    }

    /// Only a run of more than 600 s after the last restart resets it; a long wait
    /// between a crash and the restart does not.
    #[test]
    fn resets_after_ten_minutes_of_running() {
        let t0 = Instant::now();
        let mut b = BackOff::new(INITIAL, MAX);
        b.next("k", t0, t0);
        b.next("k", t0 + S, t0 + S);
        b.next("k", t0 + 2 * S, t0 + 2 * S);
        assert_eq!(b.get("k"), 40 * S);
        // Ran 600 s exactly: still in back-off (strictly greater resets).
        let at = t0 + 2 * S + EXPIRE;
        assert_eq!(b.remaining("k", at, at), Some(40 * S));
        // Crashed quickly but restarted an hour later: it still doubles.
        let late = t0 + 3 * S;
        b.next("k", late, late + 3600 * S);
        assert_eq!(b.get("k"), 80 * S);
        // Ran 601 s: no back-off, and the next start begins again at 10 s.
        let long = late + 3600 * S + EXPIRE + S;
        assert_eq!(b.remaining("k", long, long), None);
        b.next("k", long, long);
        assert_eq!(b.get("k"), INITIAL);
    }

    #[test]
    fn keys_are_per_container_content() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("kube-apiserver-m1".into());
        pod.metadata.namespace = Some("kube-system".into());
        pod.metadata.uid = Some("u1".into());
        let c = Container {
            name: "kube-apiserver".into(),
            image: Some("a:1".into()),
            ..Default::default()
        };
        let k = stable_key(&pod, &c);
        assert!(k.starts_with("kube-apiserver-m1_kube-system_u1_kube-apiserver_"));
        assert_eq!(k, stable_key(&pod, &c.clone()));
        let other = Container {
            image: Some("a:2".into()),
            ..c.clone()
        };
        assert_ne!(k, stable_key(&pod, &other));
        pod.metadata.uid = Some("u2".into());
        assert_ne!(k, stable_key(&pod, &c));
    }

    #[test]
    fn message_has_upstream_shape() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("drill".into());
        pod.metadata.uid = Some("0a-1b".into());
        assert_eq!(
            message(80 * S, "nginx", &pod),
            "back-off 1m20s restarting failed container=nginx pod=web_drill(0a-1b)"
        );
        assert_eq!(go_duration(10 * S), "10s");
        assert_eq!(go_duration(MAX), "5m0s");
        assert_eq!(go_duration(160 * S), "2m40s");
        assert_eq!(go_duration(3600 * S), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn a_low_max_lowers_the_initial_delay() {
        let mut b = BackOff::new(INITIAL, 4 * S);
        let t = Instant::now();
        b.next("k", t, t);
        assert_eq!(b.get("k"), 4 * S);
    }
}
