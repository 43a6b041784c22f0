//! `kubeboot`: every command (see `cmd::entry` for what is done around one).

use std::process::ExitCode;

use kubeboot::cmd::{self, Cli, Command, Failure, checkpoint_binary};

fn main() -> ExitCode {
    cmd::entry::main(run)
}

/// `checkpoint` becomes the checkpointer's own binary when it is installed.
fn run(cli: Cli) -> Result<(), Failure> {
    if matches!(cli.command, Command::Checkpoint(_)) {
        checkpoint_binary::exec();
    }
    cmd::run(cli)
}
