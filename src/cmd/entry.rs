//! What `kubeboot` and `kubeboot-checkpoint` do around a command: apply the config
//! file, parse, set up logging, run it, map its error to an exit code. Each binary
//! passes the commands it links ([`super::run`], or the checkpointer alone), so the
//! checkpointer's binary carries none of the others' code.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, Exit, Failure, LogFormat};
use crate::cmd;
use crate::config;
use crate::ensure::EnsureError;
use crate::systemd::journal::{self, Setup, Sink};
use crate::systemd::logfields::{self, Fields};

/// The process: `run` runs the parsed command.
pub fn main(run: fn(Cli) -> Result<(), Failure>) -> ExitCode {
    let argv = match with_config(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("kubeboot: error: {e}");
            return ExitCode::from(Exit::Usage as u8);
        }
    };
    // The long help of each command ends with its examples (`cmd::manual`).
    let parsed = cmd::manual::with_examples(Cli::command())
        .try_get_matches_from(&argv)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, &argv),
    };
    let sink = journal::init(Setup {
        target: cli.log_target.into(),
        json: cli.log_format == LogFormat::Json,
        command: cli.command.name(),
    });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`kubeboot inspect F --keys | head -1`): nothing is wrong.
        Err(failure) if is_broken_pipe(&failure.error) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure, sink);
            ExitCode::from(failure.code as u8)
        }
    }
}

/// The one error line. In the journal it is an entry at error priority, with `ensure`'s
/// decision when the error is one (refused, no-source, …) and the exit code as
/// `KUBEBOOT_EXIT`; on stderr it is the plain line scripts read. Under systemd it is
/// also the last `STATUS=`, so `systemctl status` shows why the unit failed rather than
/// the step it was on.
fn report(failure: &Failure, sink: Sink) {
    let line = format!("kubeboot: error: {failure}");
    crate::systemd::status(&line);
    match sink {
        Sink::Stderr => eprintln!("{line}"),
        Sink::Journal => {
            let decision = failure
                .error
                .downcast_ref::<EnsureError>()
                .and_then(EnsureError::decision);
            let f = Fields {
                decision,
                ..Fields::default()
            };
            logfields::error_with_exit(f, failure.code as u8, &line);
        }
    }
}

/// clap's own output for `--help`, `--version` and a bare `kubeboot`; any other parse
/// error as the one error line (`cmd::usage`), exit 2.
fn usage_error(e: clap::Error, argv: &[OsString]) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(Exit::Usage as u8))
        }
        _ => {
            let text = e.render().to_string();
            let command = cmd::usage::command_path(&Cli::command(), argv);
            eprintln!("kubeboot: error: {}", cmd::usage::one_line(&text, &command));
            ExitCode::from(Exit::Usage as u8)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The command line with the config file's flags for its command in front of the
/// operator's own (see `kubeboot::config`).
fn with_config(argv: Vec<OsString>) -> Result<Vec<OsString>, config::ConfigError> {
    let root = Cli::command();
    if !config::applies(&root, &argv) {
        return Ok(argv);
    }
    let (path, explicit) = config::locate(&argv, std::env::var_os("KUBEBOOT_CONFIG"));
    match config::read(&path, explicit) {
        Ok(Some(table)) => config::apply(&root, &table, &path, argv),
        Ok(None) => Ok(argv),
        Err(e) if config::is_read_only(&root, &argv) => {
            eprintln!("kubeboot: warning: {e}; ignored by this read-only command");
            Ok(argv)
        }
        Err(e) => Err(e),
    }
}
