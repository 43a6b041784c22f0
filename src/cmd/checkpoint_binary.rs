//! `kubeboot-checkpoint`: the checkpointer in a binary of its own, which `kubeboot
//! checkpoint` becomes (`exec`) when it is installed beside `kubeboot`.
//!
//! Why: the daemon runs for the life of the node, and most of its resident memory is
//! pages of the program it runs. In the 42 MB `kubeboot`, the code it touches is spread
//! among every other command's, and each page fault maps a whole block of them; the
//! same code linked alone is half the size, and the daemon idles at 15.6 MiB instead of
//! 22.4 MiB (docs/benchmarks.md, pair 5). Nothing changes for the operator: the
//! DaemonSet, the unit and the flags all say `kubeboot checkpoint`, `ps` shows that
//! command line, and without the second binary the daemon runs in `kubeboot` itself.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use super::{Cli, Command, Failure, usage};

/// The file name of the checkpointer's binary, beside `kubeboot`.
pub const NAME: &str = "kubeboot-checkpoint";

/// Set by `kubeboot` for the binary it becomes: its own version, which the other
/// checks (both come from one package; a mismatch is an installation to fix).
const PARENT_VERSION: &str = "KUBEBOOT_PARENT_VERSION";

/// Replaces this process with [`NAME`] from `kubeboot`'s own directory, with the same
/// arguments (it reads the config file again, as this process did) and the same
/// `argv[0]`. Returns only when it cannot: not installed, or the exec failed (said in
/// the journal); the caller then runs the daemon itself.
pub fn exec() {
    let Some(own) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(NAME))
        .filter(|own| own.is_file())
    else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("kubeboot"));
    let error = std::process::Command::new(&own)
        .arg0(arg0)
        .args(args)
        .env(PARENT_VERSION, env!("CARGO_PKG_VERSION"))
        .exec();
    tracing::warn!(
        "cannot run {}: {error}; the checkpointer runs in kubeboot itself",
        own.display()
    );
}

/// What `kubeboot-checkpoint` runs: `checkpoint`, and nothing else.
pub fn run(cli: Cli) -> Result<(), Failure> {
    if let Some(parent) = std::env::var_os(PARENT_VERSION)
        && parent != env!("CARGO_PKG_VERSION")
    {
        tracing::warn!(
            "{NAME} {} was started by kubeboot {}: install the two from one package",
            env!("CARGO_PKG_VERSION"),
            parent.to_string_lossy()
        );
    }
    match cli.command {
        Command::Checkpoint(args) => super::checkpoint::run(args),
        other => Err(usage(format!(
            "{NAME} runs only `checkpoint`; `{}` is a command of kubeboot",
            other.name()
        ))),
    }
}
