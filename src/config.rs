//! `/etc/kubeboot/config.toml`: the flags an operator would otherwise repeat in every
//! unit, one table per command, each key a long flag name exactly as `--help` spells
//! it. A flag given on the command line wins over the file (docs/design.md §2).
//!
//! ```toml
//! [ensure]
//! kubeconfig = "/etc/kubernetes/kubeconfig"
//! etcd-servers = ["https://10.0.0.10:2379"]
//! boot-grace = "5m"
//!
//! [backup]
//! etcd-servers = ["https://10.0.0.10:2379"]
//! keep-daily = 14
//! ```
//!
//! The file becomes flags placed before the operator's own, so one parser (clap's)
//! checks every value, and a key's value is parsed exactly like its flag's. Keys are
//! checked against the command's real flags: a misspelt key is an error naming the
//! file and the key, not a setting that silently does nothing.
//!
//! A command reads only its own table, so a mistake in `[ensure]` stops `ensure` (and
//! `config check`, which checks every table) but not `inspect` at 3 a.m.; `--help`,
//! `--version`, `generate` and `config` never apply the file at all, so a broken file can
//! never hide the help that explains it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Command};

/// Where the config is read from when neither `--config` nor `KUBEBOOT_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/kubeboot/config.toml";

#[derive(Debug, thiserror::Error)]
#[error("{file}: {what}")]
pub struct ConfigError {
    pub file: String,
    pub what: String,
}

/// The config file a run reads: `--config F` (or `--config=F`) in `argv`, else
/// `$KUBEBOOT_CONFIG`, else [`DEFAULT_PATH`]. The bool says whether it was asked for
/// explicitly (then a missing file is an error; the default may be absent).
pub fn locate(argv: &[OsString], env: Option<OsString>) -> (PathBuf, bool) {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            if let Some(v) = it.next() {
                return (PathBuf::from(v), true);
            }
        } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return (PathBuf::from(v), true);
        }
    }
    match env {
        Some(v) if !v.is_empty() => (PathBuf::from(v), true),
        _ => (PathBuf::from(DEFAULT_PATH), false),
    }
}

/// Reads the config, `None` when the default file does not exist.
pub fn read(path: &Path, explicit: bool) -> Result<Option<toml::Table>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(ConfigError {
                file: path.display().to_string(),
                what: e.to_string(),
            });
        }
    };
    parse(&text, path).map(Some)
}

/// Parses the text of the config file at `path` (named in errors). Pure, so the fuzz
/// targets (`fuzz/`) can feed it any bytes.
pub fn parse(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        // The message and where, on one line (its Display draws the line with a caret).
        let at = e.span().map(|span| {
            let before = text.get(..span.start).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: ")
        });
        ConfigError {
            file: path.display().to_string(),
            what: format!(
                "{}{}",
                at.unwrap_or_default(),
                e.message().trim().replace('\n', " ")
            ),
        }
    })
}

/// Commands that only read what the operator names (a snapshot, a value): they run
/// even when the config file cannot be parsed, since they have nothing to take from it
/// that could be wrong.
pub fn is_read_only(root: &Command, argv: &[OsString]) -> bool {
    find_subcommand(root, argv)
        .is_some_and(|(_, sub)| matches!(sub.get_name(), "inspect" | "decode" | "certs"))
}

/// Whether the config file has anything to say to this command line: not to a bare
/// `kubeboot`, `--help`/`--version` anywhere, or the `generate`, `config` and `help`
/// commands (`config check` reads the file itself).
pub fn applies(root: &Command, argv: &[OsString]) -> bool {
    let asks_help = argv
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| matches!(a.to_str(), Some("-h" | "--help" | "-V" | "--version")));
    match find_subcommand(root, argv) {
        Some((_, sub)) => !asks_help && !matches!(sub.get_name(), "generate" | "config" | "help"),
        None => false,
    }
}

/// `argv` with the flags from `config` for the command it runs inserted right after
/// the command's name, except flags `argv` already gives. Only that command's table is
/// checked. `root` is the whole CLI.
pub fn apply(
    root: &Command,
    config: &toml::Table,
    file: &Path,
    argv: Vec<OsString>,
) -> Result<Vec<OsString>, ConfigError> {
    let Some((at, sub)) = find_subcommand(root, &argv) else {
        return Ok(argv);
    };
    let Some(value) = config.get(sub.get_name()) else {
        return Ok(argv);
    };
    check_table(root, sub.get_name(), value, file)?;
    let toml::Value::Table(section) = value else {
        return Ok(argv);
    };
    let given = |long: &str| {
        argv.iter()
            .skip(at + 1)
            .filter_map(|a| a.to_str())
            .any(|a| a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
    };
    let mut injected = Vec::new();
    for (key, value) in section {
        if !given(key) {
            injected.extend(flags(key, value).into_iter().map(OsString::from));
        }
    }
    let mut out = argv;
    out.splice(at + 1..at + 1, injected);
    Ok(out)
}

/// Checks every table is a command and every key one of its flags, with a value its
/// flag's parser accepts.
pub fn check(root: &Command, config: &toml::Table, file: &Path) -> Result<(), ConfigError> {
    for (name, section) in config {
        check_table(root, name, section, file)?;
    }
    Ok(())
}

/// Checks one `[name]` table.
fn check_table(
    root: &Command,
    name: &str,
    section: &toml::Value,
    file: &Path,
) -> Result<(), ConfigError> {
    let err = |what: String| ConfigError {
        file: file.display().to_string(),
        what,
    };
    let mut root = root.clone();
    root.build();
    let Some(cmd) = root.find_subcommand(name).filter(|c| !c.is_hide_set()) else {
        return Err(err(format!("[{name}]: no such command")));
    };
    let toml::Value::Table(section) = section else {
        return Err(err(format!("{name}: must be a table ([{name}])")));
    };
    for (key, value) in section {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !a.is_global_set())
            .ok_or_else(|| err(format!("[{name}] {key}: `kubeboot {name}` has no --{key}")))?;
        let takes_value = !matches!(
            arg.get_action(),
            ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
        );
        match (value, takes_value) {
            (toml::Value::Boolean(_), false) => {}
            (_, false) => {
                return Err(err(format!("[{name}] {key}: must be true or false")));
            }
            (toml::Value::Boolean(_) | toml::Value::Table(_), true) => {
                return Err(err(format!(
                    "[{name}] {key}: must be a string, number or list"
                )));
            }
            (_, true) => {
                // The flag's own parser, through clap: the only error that is not
                // the value's is a required flag the config does not set.
                let mut probe = vec![OsString::from("kubeboot"), OsString::from(name)];
                probe.extend(flags(key, value).into_iter().map(OsString::from));
                if let Err(e) = root.clone().try_get_matches_from(probe)
                    && e.kind() != clap::error::ErrorKind::MissingRequiredArgument
                {
                    return Err(err(format!(
                        "[{name}] {key} = {value}: {}",
                        first_line(&e.to_string())
                    )));
                }
            }
        }
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

/// The command `argv` runs and the index of its name in `argv`.
fn find_subcommand<'a>(root: &'a Command, argv: &[OsString]) -> Option<(usize, &'a Command)> {
    let mut skip_value = false;
    for (i, a) in argv.iter().enumerate().skip(1) {
        let s = a.to_str()?;
        if skip_value {
            skip_value = false;
            continue;
        }
        if s.starts_with('-') {
            // The global flags that take a separate value.
            skip_value = s == "--log-format" || s == "--log-target" || s == "--config";
            continue;
        }
        return root.find_subcommand(s).map(|c| (i, c));
    }
    None
}

/// The flag(s) a key stands for.
fn flags(key: &str, value: &toml::Value) -> Vec<String> {
    match value {
        toml::Value::Boolean(true) => vec![format!("--{key}")],
        toml::Value::Boolean(false) => Vec::new(),
        v => scalars(v)
            .into_iter()
            .map(|s| format!("--{key}={s}"))
            .collect(),
    }
}

fn scalars(value: &toml::Value) -> Vec<String> {
    match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Array(items) => items.iter().flat_map(scalars).collect(),
        toml::Value::Boolean(b) => vec![b.to_string()],
        toml::Value::Datetime(d) => vec![d.to_string()],
        toml::Value::Table(_) => Vec::new(),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
