//! When the boot grace starts, and when it starts again.
//!
//! The grace is the time a control plane gets to come up by itself before `ensure`
//! touches it (issue 11). A control plane comes up in layers: the kubelet, then the
//! static pods and checkpoints it runs (etcd, then the api-server on it), then the
//! components on the api-server. A layer cannot start before the one under it, so its
//! time counts from when that one was there, not from when `ensure` started:
//! - the kubelet gets the grace from `ensure`'s start (nothing is under it here);
//! - the control plane gets the grace from when the kubelet was **first seen
//!   healthy**: a kubelet that took four minutes to start (a slow disk, an image pull
//!   of its own) must not leave the api-server one minute;
//! - an api-server gets the grace again when **etcd answers after it was seen down**
//!   (a self-hosted etcd whose checkpoint started late): it could not be ready before,
//!   and a recovery through etcd at that moment would race the api-server's own
//!   checkpoint coming up on it. Once per run, so an etcd that flaps cannot hold a
//!   recovery off for ever;
//! - another master holding the recovery lock restarts it too (see `ensure::run`).
//!
//! Pure but for the `Instant`s handed in, so every rule is unit-tested.

use std::time::{Duration, Instant};

/// The grace's clock across probe rounds.
#[derive(Debug, Clone)]
pub struct Grace {
    started: Instant,
    /// When the kubelet was first seen healthy.
    kubelet_healthy: Option<Instant>,
    /// Since when etcd has been seen down (probed, no answer).
    etcd_down: bool,
    /// The once-per-run restart for etcd coming up was used.
    etcd_restarted: bool,
    /// The grace was restarted at this time (etcd came up, the lock was busy).
    restarted: Option<Instant>,
}

impl Grace {
    pub fn new(now: Instant) -> Self {
        Grace {
            started: now,
            kubelet_healthy: None,
            etcd_down: false,
            etcd_restarted: false,
            restarted: None,
        }
    }

    /// Records one round's kubelet state; returns a line for the journal the first
    /// time the kubelet is healthy after `ensure` had to wait for it.
    pub fn kubelet(&mut self, healthy: bool, now: Instant) -> Option<String> {
        if !healthy || self.kubelet_healthy.is_some() {
            return None;
        }
        self.kubelet_healthy = Some(now);
        let waited = now.duration_since(self.started);
        (waited >= Duration::from_secs(1)).then(|| {
            format!(
                "the kubelet is healthy after {:.1} s; the control plane's boot grace counts from now",
                waited.as_secs_f64()
            )
        })
    }

    /// Records one etcd probe (`None`: not probed this round); returns a line for the
    /// journal when this restarts the grace.
    pub fn etcd(&mut self, answers: Option<bool>, now: Instant) -> Option<String> {
        match answers {
            Some(false) => self.etcd_down = true,
            Some(true) if self.etcd_down && !self.etcd_restarted => {
                self.etcd_down = false;
                self.etcd_restarted = true;
                self.restarted = Some(now);
                return Some(
                    "etcd answers now, after it was seen down: the api-server gets a new boot grace to come up on it"
                        .into(),
                );
            }
            Some(true) => self.etcd_down = false,
            None => {}
        }
        None
    }

    /// Starts the grace again from `now` (another master held the recovery lock).
    pub fn restart(&mut self, now: Instant) {
        self.restarted = Some(now);
    }

    /// How much of the grace has passed: since the latest of the kubelet's first
    /// health and any restart; since `ensure` started while the kubelet never was
    /// healthy (which is the kubelet's own grace).
    pub fn elapsed(&self, now: Instant) -> Duration {
        let from = [self.kubelet_healthy, self.restarted]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.started);
        now.saturating_duration_since(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn the_control_plane_grace_counts_from_the_kubelets_first_health() {
        let t0 = Instant::now();
        let mut g = Grace::new(t0);
        assert_eq!(g.kubelet(false, at(t0, 10)), None);
        // The kubelet's own wait counts from the start.
        assert_eq!(g.elapsed(at(t0, 240)), Duration::from_secs(240));
        let line = g.kubelet(true, at(t0, 240)).unwrap();
        assert!(line.contains("healthy after 240.0 s"), "{line}");
        assert_eq!(g.elapsed(at(t0, 300)), Duration::from_secs(60));
        // Healthy again later, or down for a moment: the grace does not move.
        assert_eq!(g.kubelet(false, at(t0, 310)), None);
        assert_eq!(g.kubelet(true, at(t0, 320)), None);
        assert_eq!(g.elapsed(at(t0, 540)), Duration::from_secs(300));
    }

    #[test]
    fn a_kubelet_healthy_at_once_says_nothing() {
        let t0 = Instant::now();
        let mut g = Grace::new(t0);
        assert_eq!(g.kubelet(true, t0), None);
        assert_eq!(g.elapsed(at(t0, 5)), Duration::from_secs(5));
    }

    #[test]
    fn etcd_coming_up_after_it_was_down_restarts_the_grace_once() {
        let t0 = Instant::now();
        let mut g = Grace::new(t0);
        g.kubelet(true, t0);
        // Up from its first probe: nothing to restart.
        assert_eq!(g.etcd(Some(true), at(t0, 300)), None);
        assert_eq!(g.etcd(None, at(t0, 301)), None);
        assert_eq!(g.etcd(Some(false), at(t0, 302)), None);
        let line = g.etcd(Some(true), at(t0, 345)).unwrap();
        assert!(line.contains("new boot grace"), "{line}");
        assert_eq!(g.elapsed(at(t0, 355)), Duration::from_secs(10));
        // Down and up again: no second restart.
        assert_eq!(g.etcd(Some(false), at(t0, 400)), None);
        assert_eq!(g.etcd(Some(true), at(t0, 410)), None);
        assert_eq!(g.elapsed(at(t0, 645)), Duration::from_secs(300));
    }

    #[test]
    fn a_restart_counts_from_the_latest_event() {
        let t0 = Instant::now();
        let mut g = Grace::new(t0);
        g.kubelet(true, at(t0, 5));
        g.restart(at(t0, 100));
        assert_eq!(g.elapsed(at(t0, 130)), Duration::from_secs(30));
    }
}
