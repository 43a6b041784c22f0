//! `kubeboot generate`: man pages and shell completions, made from the CLI definition
//! itself so they never drift from it (being built).

use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub struct GenerateArgs {}

pub fn run(_args: GenerateArgs) -> Result<(), Failure> {
    Err(super::usage("kubeboot generate is not built yet"))
}
