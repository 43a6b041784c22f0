//! `kubeboot checkpoint`: the pod checkpointer, which keeps a local static-pod copy of
//! each annotated parent pod (the self-hosted api-server, and itself) so that a master
//! rebooted with no api-server reachable can still start one.
//!
//! bootkube's checkpointer did this with its decisions tangled into its I/O loop: a
//! runtime error activated every checkpoint, a missed edge was never repaired, and an
//! unscheduled checkpointer could wipe or stall the node's checkpoints (bootkube #764,
//! #816). Here the decisions are pure and tested alone: `sanitize` turns a parent into
//! its checkpoint (and says what data to write for it), `state` turns one cycle's
//! observations and the checkpoints on disk into actions. The daemon only observes and
//! executes.

pub mod daemon;
mod downward;
pub mod execute;
pub mod files;
pub mod kubelet;
pub mod materialize;
pub mod observe;
pub mod payload;
pub mod report;
pub mod runtime;
pub mod sanitize;
pub mod state;
pub mod tokens;
pub mod unauthorized;
mod volumes;
