//! `kubeboot-checkpoint`: `kubeboot checkpoint` with only the checkpointer linked
//! (`cmd::checkpoint_binary` says why).

use std::process::ExitCode;

use kubeboot::cmd::{checkpoint_binary, entry};

fn main() -> ExitCode {
    entry::main(checkpoint_binary::run)
}
