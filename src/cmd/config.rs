//! `kubeboot config check`: says whether the config file is sound. `main` has already
//! applied (and so checked) it before any command runs; this reports the result.

use std::path::PathBuf;

use clap::{CommandFactory, Subcommand};

use super::{Cli, Exit, ExitWith, Failure};
use crate::config;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check every [COMMAND] table and key against the commands' flags and values
    Check,
}

pub fn run(cmd: ConfigCommand, path: Option<PathBuf>) -> Result<(), Failure> {
    match cmd {
        ConfigCommand::Check => {
            let (path, explicit) = match path {
                Some(p) => (p, true),
                None => (PathBuf::from(config::DEFAULT_PATH), false),
            };
            let Some(table) = config::read(&path, explicit).exit_with(Exit::Usage)? else {
                println!(
                    "{}: no config file (flags and defaults only)",
                    path.display()
                );
                return Ok(());
            };

            config::check(&Cli::command(), &table, &path).exit_with(Exit::Usage)?;
            let tables: Vec<&str> = table.keys().map(String::as_str).collect();
            println!("{}: ok ([{}])", path.display(), tables.join("], ["));
            Ok(())
        }
    }
}
