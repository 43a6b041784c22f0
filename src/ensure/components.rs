//! What each required component's state means for `ensure`: Ready, un-Ready, or gone.
//!
//! `start` waits until every required component is Ready; `ensure` must tell apart
//! two kinds of "not Ready" that ask for opposite answers (issue 11, "healthy means
//! healthy"):
//! - **un-Ready**: a pod of it is bound to a live node (crash-looping, pulling an
//!   image that cannot be pulled, not Ready yet). The control plane is there and is
//!   running it; a recovery would write the same objects back and `start` would wait
//!   on the same pod. It is reported, never recovered.
//! - **gone**: no pod of it on any live node (none at all, only on dead nodes, or
//!   only unbound), while its DaemonSet or Deployment is still in the api-server —
//!   nothing runs it and nothing will (without a scheduler or a controller-manager
//!   no replacement is placed). That is what a recovery through the api-server
//!   brings back.
//!
//! A component with neither pods nor a DaemonSet/Deployment in the api-server is
//! un-Ready too (reported): there is nothing to recover it from (it is probably run
//! outside Kubernetes, e.g. the checkpointer as its systemd unit, and named in
//! `--required-pods` by mistake).
//!
//! Every time here is the api-server's clock (see [`super::clock`]), never this
//! node's: lease renewals are written on the cluster's clocks.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::start::observe::{self, Required, Rules, Stage, World};

/// The required components' states from one listing: `(unready, gone)`, each
/// entry `ns/name: what its pods are doing`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    pub unready: Vec<String>,
    pub gone: Vec<String>,
}

/// Since when pods have been seen Ready, across probes (see `start::observe`). The
/// start time is the api-server's clock at the first listing.
#[derive(Debug, Default)]
pub struct ReadyTracker {
    since: Option<Timestamp>,
    ready_since: BTreeMap<String, Timestamp>,
}

/// Assesses every required component in `world` at the api-server's time `now`.
/// `declared` holds the components whose DaemonSet or Deployment exists.
pub fn assess(
    required: &[Required],
    world: &World,
    declared: &BTreeSet<Required>,
    now: Timestamp,
    rules: &Rules,
    tracker: &mut ReadyTracker,
) -> Assessment {
    let since = *tracker.since.get_or_insert(now);
    let live = observe::live_nodes(world, now, rules.node_grace);
    observe::track_ready(&mut tracker.ready_since, world, &live, now);
    let mut out = Assessment::default();
    for req in required {
        let v = observe::assess(req, world, &live, since, now, rules, &tracker.ready_since);
        if v.stage == Stage::Ready {
            continue;
        }
        let on_live_node = world.pods.iter().any(|p| {
            observe::owned_by(p, req, &world.replicasets)
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| live.contains(n))
        });
        if on_live_node {
            out.unready.push(format!("{req}: {}", v.detail));
        } else if declared.contains(req) {
            out.gone.push(format!("{req}: {}", v.detail));
        } else {
            out.unready.push(format!(
                "{req}: no pod of it and no DaemonSet or Deployment {req} in the api-server, so nothing to recover it from (is it run outside Kubernetes and named in --required-pods by mistake?)"
            ));
        }
    }
    out
}

#[cfg(test)]
#[path = "components_tests.rs"]
mod tests;
