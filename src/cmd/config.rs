//! `kubeboot config check`: says whether the config file is sound. `main` has already
//! applied (and so checked) it before any command runs; this reports the result.

use std::path::PathBuf;

use clap::{CommandFactory, Subcommand};

use super::{Cli, Exit, ExitWith, Failure, OutputFlag};
use crate::config;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check every [COMMAND] table and key against the commands' flags and values
    Check {
        #[command(flatten)]
        output: OutputFlag,
    },
}

/// What `config check -o json|yaml` prints (docs/cli.md); a refused config is the one
/// error line and exit 2, as in text.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckReport<'a> {
    file: String,
    /// False: no file, so flags and defaults only.
    found: bool,
    tables: Vec<&'a str>,
}

pub fn run(cmd: ConfigCommand, path: Option<PathBuf>) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Check { output } => {
            let (path, explicit) = match path {
                Some(p) => (p, true),
                None => (PathBuf::from(config::DEFAULT_PATH), false),
            };
            let file = path.display().to_string();
            let Some(table) = config::read(&path, explicit).exit_with(Exit::Usage)? else {
                let line = format!("{file}: no config file (flags and defaults only)");
                let report = CheckReport {
                    file,
                    found: false,
                    tables: vec![],
                };
                output.emit(&[line], &report)?;
                return Ok(());
            };

            config::check(&Cli::command(), &table, &path).exit_with(Exit::Usage)?;
            let tables: Vec<&str> = table.keys().map(String::as_str).collect();
            let line = format!("{file}: ok ([{}])", tables.join("], ["));
            output.emit(
                &[line],
                &CheckReport {
                    file,
                    found: true,
                    tables,
                },
            )?;
            Ok(())
        }
    }
}
