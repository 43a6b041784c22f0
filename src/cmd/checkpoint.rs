//! `kubeboot checkpoint`: the pod checkpointer daemon (being built).

use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub struct CheckpointArgs {}

pub fn run(_args: CheckpointArgs) -> Result<(), Failure> {
    Err(super::usage("kubeboot checkpoint is not built yet"))
}
