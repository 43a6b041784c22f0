//! `kubeboot`: parse, set up logging, run one command, map its error to an exit code.

use std::process::ExitCode;

use clap::Parser;
use kubeboot::cmd::{self, Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kubeboot: error: {failure}");
            ExitCode::from(failure.code as u8)
        }
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
