//! The checkpointer's decisions: observations + the checkpoints on disk → actions.
//!
//! bootkube kept a state per pod in memory and queued an action only when it changed,
//! so a lost edge (a deleted active file, a crash between two writes) was never repaired
//! and a restart re-read only part of the state. Here where each checkpoint is (nothing,
//! saved, saved + active) is read from disk every cycle and compared with where the
//! observations want it. The only memory is two clocks per pod: since when the API has
//! said it is gone, and when it was last saved.
//!
//! Inputs per parent `ns/name`: A = the API answered; P = it lists the parent on this
//! node, not terminating; R = a ready sandbox of the parent runs here (a crash-looping
//! container counts: that is how the self-hosted api-server takes its port back from its
//! checkpoint), else the kubelet's `Running` phase if the runtime cannot be read, else
//! unknown; `gone` = A∧¬P at every step of the last grace period. bootkube's table,
//! re-derived (its `none` is the first row, inactive-grace and active-grace the A∧¬P
//! column; `–` = nothing):
//!
//! | on disk        | ¬A∧R or A∧P∧R           | ¬A∧¬R or A∧P∧¬R       | R unknown | A∧¬P | gone               |
//! |----------------|-------------------------|-----------------------|-----------|------|--------------------|
//! | nothing        | save if A∧P             | –                     | –         | –    | –                  |
//! | saved          | save if A∧P             | activate              | –         | –    | remove             |
//! | saved + active | deactivate, save if A∧P | – (activate if stale) | –         | –    | deactivate, remove |
//!
//! The self checkpoint is saved like the others but always active, whatever R, so the
//! checkpointer runs after a reboot with no API; for `gone` see (b). A save is emitted
//! when the saved manifest differs or the last one is older than `refresh` (Secrets are
//! re-read).
//!
//! Guarantees over bootkube's, each pinned by a test:
//! - (a) A second step with the same observations emits nothing. A restart converges
//!   from disk alone; it only restarts the clocks (a removal waits one more grace
//!   period, running parents are saved again).
//! - (b) #816, #764: its own checkpoint is never deactivated (bootkube's could go
//!   inactive, then stop every checkpoint each cycle) nor removed while another one is
//!   active. When its DaemonSet has no pod on this node any more (its own is `gone` and
//!   no other pod of that DaemonSet is listed here; a rolling update's new pod retires
//!   only the old self checkpoint), it winds down in one step: the others are
//!   deactivated, then removed, then its own; while it stays gone nothing is saved.
//! - (c) With the API unreachable nothing is removed and the grace clock restarts, so
//!   grace counts API-up time: a replacement can only be created then, and removing the
//!   api-server's checkpoint right after an outage it served through could leave no
//!   api-server at all.
//! - (d) A terminating parent counts as gone, so its checkpoint does not start and hold
//!   its replacement's ports; an active checkpoint is deactivated before it is removed.
//! - An unreadable runtime no longer means "nothing runs" (bootkube then started every
//!   checkpoint and host ports collided): unknown R changes nothing.
//!
//! Caveats: `Remove` deletes the data, the saved manifest, then the active copy: for the
//! self checkpoint that stops the process doing it, last. The executor may wait, bounded,
//! between the `Deactivate` and the `Remove` of one pod for the kubelet to stop it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;

use super::sanitize::{self, Materialize, SanitizeError};

/// A parent pod, `namespace/name`; also the key of its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of `pod`, if it has a namespace and a name.
    #[must_use]
    pub fn of(pod: &Pod) -> Option<Self> {
        let m = &pod.metadata;
        match (m.namespace.as_deref(), m.name.as_deref()) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => {
                Some(PodKey::new(ns, name))
            }
            _ => None,
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What does not change from step to step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The checkpointer's own parent pod (its `POD_NAME` without the `-<node>` suffix
    /// the kubelet gives a static pod).
    pub self_key: PodKey,
    /// How long the API must say a parent is gone before its checkpoint is removed.
    pub grace: SignedDuration,
    /// How often a running parent is saved again, re-reading its Secrets.
    pub refresh: SignedDuration,
    /// Where checkpoint data lives (see `sanitize`).
    pub checkpoint_root: String,
    /// The namespaces whose annotated pods are checkpointed (`kube-system` by default). A
    /// checkpoint runs as a static pod with its data on the host, outside any admission:
    /// anyone who may create an annotated pod elsewhere must not get that.
    pub namespaces: BTreeSet<String>,
}

/// One cycle's observations. Lists may hold any pods: non-parents are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The pods the API lists on this node; `None` when the API did not answer.
    pub api: Option<Vec<Pod>>,
    /// Parents with a ready sandbox in the container runtime; `None` when unreadable.
    /// A checkpoint's own sandbox (the kubelet names it `<name>-<node>`) is not its parent.
    pub runtime: Option<BTreeSet<PodKey>>,
    /// The kubelet's pod list; `None` when unreadable.
    pub kubelet: Option<Vec<Pod>>,
    /// The checkpoints on disk, by parent.
    pub disk: BTreeMap<PodKey, OnDisk>,
}

/// One checkpoint's files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnDisk {
    /// The saved (inactive) manifest; `None` if absent or unreadable.
    pub saved: Option<Pod>,
    /// The copy in the kubelet's static pod dir.
    pub active: Active,
}

/// Whether a checkpoint is in the static pod dir, and as saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Active {
    #[default]
    No,
    /// Same bytes as the saved manifest.
    Current,
    /// Different bytes, or no saved manifest to compare.
    Stale,
}

/// The clocks carried from one step to the next. `State::default()` is a fresh start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    clocks: BTreeMap<PodKey, Clocks>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Clocks {
    /// Since when the API has said, at every step, that the parent is gone.
    gone_since: Option<Timestamp>,
    /// When `Save` was last emitted.
    saved_at: Option<Timestamp>,
}

impl State {
    /// The executor could not apply a `Save`: emit it again next step.
    pub fn save_failed(&mut self, key: &PodKey) {
        if let Some(c) = self.clocks.get_mut(key) {
            c.saved_at = None;
        }
    }

    /// Since when the API has said the parent of `key` is gone, for status reports.
    #[must_use]
    pub fn gone_since(&self, key: &PodKey) -> Option<Timestamp> {
        self.clocks.get(key).and_then(|c| c.gone_since)
    }
}

/// What the executor does, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write the saved manifest (if it differs) and the data `materialize` describes.
    Save {
        key: PodKey,
        manifest: Box<Pod>,
        materialize: Vec<Materialize>,
    },
    /// Copy the saved manifest into the static pod dir (if it differs).
    Activate { key: PodKey },
    /// Delete the copy in the static pod dir.
    Deactivate { key: PodKey },
    /// Delete the data dirs, the saved manifest, then the active copy.
    Remove { key: PodKey },
}

impl Action {
    #[must_use]
    pub fn key(&self) -> &PodKey {
        match self {
            Action::Save { key, .. }
            | Action::Activate { key }
            | Action::Deactivate { key }
            | Action::Remove { key } => key,
        }
    }
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub state: State,
    /// Deactivations, saves, activations, removals; each sorted by key, self removed last.
    pub actions: Vec<Action>,
    /// Parents that could not be checkpointed this step.
    pub errors: Vec<SanitizeError>,
}

/// Where one checkpoint should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Leave it as it is.
    Hold,
    Inactive,
    Active,
    Gone,
}

/// Decides this cycle's actions. Pure: the executor does the I/O.
#[must_use]
pub fn step(state: &State, observed: &Observed, now: Timestamp, params: &Params) -> Step {
    let allowed = |p: &Pod| {
        params.namespaces.is_empty()
            || p.metadata
                .namespace
                .as_ref()
                .is_some_and(|ns| params.namespaces.contains(ns))
            || PodKey::of(p).is_some_and(|k| k == params.self_key)
    };
    let listed: Option<BTreeMap<PodKey, &Pod>> = observed.api.as_ref().map(|pods| {
        pods.iter()
            .filter(|p| sanitize::is_parent(p) && p.metadata.deletion_timestamp.is_none())
            .filter(|p| allowed(p))
            .filter_map(|p| Some((PodKey::of(p)?, p)))
            .collect()
    });
    let kubelet: Option<BTreeMap<PodKey, bool>> = observed.kubelet.as_ref().map(|pods| {
        pods.iter()
            .filter(|p| sanitize::is_parent(p) && allowed(p))
            .filter_map(|p| {
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                Some((PodKey::of(p)?, running))
            })
            .collect()
    });
    let running = |key: &PodKey| match (&observed.runtime, &kubelet) {
        (Some(rt), _) => Some(rt.contains(key)),
        (None, Some(k)) => Some(k.get(key).copied().unwrap_or(false)),
        (None, None) => None,
    };
    let is_listed = |key: &PodKey| listed.as_ref().and_then(|l| l.get(key)).copied();

    let mut keys: BTreeSet<&PodKey> = observed.disk.keys().collect();
    keys.extend(listed.iter().flat_map(|l| l.keys()));
    keys.insert(&params.self_key);

    let mut clocks: BTreeMap<PodKey, Clocks> = BTreeMap::new();
    for &key in &keys {
        let old = state.clocks.get(key).copied().unwrap_or_default();
        let gone_since = match &listed {
            Some(l) if !l.contains_key(key) => Some(old.gone_since.unwrap_or(now)),
            _ => None,
        };
        clocks.insert(key.clone(), Clocks { gone_since, ..old });
    }
    let gone: BTreeSet<PodKey> = clocks
        .iter()
        .filter(|(_, c)| {
            c.gone_since
                .is_some_and(|t| now.duration_since(t) >= params.grace)
        })
        .map(|(k, _)| k.clone())
        .collect();
    let self_gone = gone.contains(&params.self_key);
    let sibling = listed
        .iter()
        .flat_map(|l| l.iter())
        .any(|(k, p)| *k != params.self_key && same_daemon_set(&params.self_key, p));
    let wind_down = self_gone && !sibling;

    let mut out = Actions::default();
    let mut errors = Vec::new();
    // The self checkpoint comes last, to see where the others end up.
    let others = keys.iter().copied().filter(|k| **k != params.self_key);
    for key in others.chain([&params.self_key]) {
        let is_self = *key == params.self_key;
        let disk = observed.disk.get(key);
        let r = running(key);
        let want = if wind_down || gone.contains(key) {
            if is_self && out.others_active(&params.self_key, &observed.disk) {
                // Not while another checkpoint runs: someone must stop it later.
                Want::Active
            } else {
                Want::Gone
            }
        } else if is_self {
            Want::Active
        } else if listed.is_none() || is_listed(key).is_some() {
            match r {
                Some(true) => Want::Inactive,
                Some(false) => Want::Active,
                None => Want::Hold,
            }
        } else {
            Want::Hold
        };
        let clock = clocks.entry(key.clone()).or_default();
        let mut save = None;
        if let (Some(parent), Some(true), false) = (is_listed(key), r, want == Want::Gone) {
            match sanitize::sanitize(parent, &params.checkpoint_root) {
                Ok(c) => {
                    let changed = disk.and_then(|d| d.saved.as_ref()) != Some(&c.pod);
                    let due = clock
                        .saved_at
                        .is_none_or(|t| now.duration_since(t) >= params.refresh);
                    if changed || due {
                        clock.saved_at = Some(now);
                        save = Some((changed, c));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let active = disk.map_or(Active::No, |d| d.active);
        let saved = disk.is_some_and(|d| d.saved.is_some());
        match want {
            Want::Hold => {}
            Want::Inactive => out.deactivate_if(active != Active::No, key),
            Want::Active => {
                let changed = save.as_ref().is_some_and(|(changed, _)| *changed);
                let can = saved || save.is_some();
                if can && (active != Active::Current || changed) {
                    out.activate.push(key.clone());
                }
            }
            Want::Gone => {
                out.deactivate_if(active != Active::No && !is_self, key);
                if disk.is_some() {
                    if is_self {
                        out.remove_self = Some(key.clone());
                    } else {
                        out.remove.push(key.clone());
                    }
                }
            }
        }
        if let Some((_, c)) = save {
            out.save.push(Action::Save {
                key: key.clone(),
                manifest: Box::new(c.pod),
                materialize: c.materialize,
            });
        }
    }
    // Forget pods with nothing on disk and nothing listed, but keep the self clocks.
    clocks.retain(|k, _| {
        *k == params.self_key || observed.disk.contains_key(k) || is_listed(k).is_some()
    });
    Step {
        state: State { clocks },
        actions: out.into_vec(),
        errors,
    }
}

/// Whether `pod` belongs to the DaemonSet whose pod `self_key` is: its controller is a
/// DaemonSet named N, and `self_key` is N plus a generated suffix, in the same namespace.
fn same_daemon_set(self_key: &PodKey, pod: &Pod) -> bool {
    if pod.metadata.namespace.as_deref() != Some(self_key.namespace.as_str()) {
        return false;
    }
    pod.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.kind == "DaemonSet"
            && self_key
                .name
                .strip_prefix(o.name.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|suffix| !suffix.is_empty() && !suffix.contains('-'))
    })
}

/// The actions of a step, by kind, in the order they are emitted.
#[derive(Default)]
struct Actions {
    deactivate: Vec<PodKey>,
    save: Vec<Action>,
    activate: Vec<PodKey>,
    remove: Vec<PodKey>,
    remove_self: Option<PodKey>,
}

impl Actions {
    fn deactivate_if(&mut self, cond: bool, key: &PodKey) {
        if cond {
            self.deactivate.push(key.clone());
        }
    }

    /// Whether a checkpoint other than `self_key` is active once these actions are done.
    fn others_active(&self, self_key: &PodKey, disk: &BTreeMap<PodKey, OnDisk>) -> bool {
        let still = disk
            .iter()
            .any(|(k, d)| k != self_key && d.active != Active::No && !self.deactivate.contains(k));
        still || self.activate.iter().any(|k| k != self_key)
    }

    fn into_vec(mut self) -> Vec<Action> {
        self.deactivate.sort();
        self.activate.sort();
        self.remove.sort();
        self.save.sort_by(|a, b| a.key().cmp(b.key()));
        let mut v: Vec<Action> = self
            .deactivate
            .into_iter()
            .map(|key| Action::Deactivate { key })
            .collect();
        v.extend(self.save);
        v.extend(
            self.activate
                .into_iter()
                .map(|key| Action::Activate { key }),
        );
        v.extend(self.remove.into_iter().map(|key| Action::Remove { key }));
        v.extend(self.remove_self.map(|key| Action::Remove { key }));
        v
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "state_fix_tests.rs"]
mod fix_tests;

#[cfg(test)]
#[path = "state_proptests.rs"]
mod proptests;
