//! `kubeboot`: parse, set up logging, run one command, map its error to an exit code.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use kubeboot::cmd::{self, Cli, Exit, LogFormat};
use kubeboot::config;

fn main() -> ExitCode {
    let argv = match with_config(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("kubeboot: error: {e}");
            return ExitCode::from(Exit::Usage as u8);
        }
    };
    let cli = Cli::parse_from(argv);
    init_logging(cli.log_format);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`kubeboot inspect F --keys | head -1`): nothing is wrong.
        Err(failure) if is_broken_pipe(&failure.error) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kubeboot: error: {failure}");
            ExitCode::from(failure.code as u8)
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

/// Log lines go to stderr (journald captures them under systemd); stdout is kept for
/// the command's own output so it can be piped.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBEBOOT_LOG")
        // kube-rs logs every failed request at error level itself; kubeboot reports the
        // ones that matter, once, with what it was doing.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube_client=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.without_time().init(),
        LogFormat::Json => builder.json().init(),
    }
}
