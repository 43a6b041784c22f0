//! The command layer: argument structs, dispatch, and the one place where errors
//! become exit codes (docs/design.md §2). Library modules return typed errors; only this
//! layer adds context, and the chain is printed once, on one line, by `main`.

pub mod backup;
pub mod backup_report;
pub mod certs;
pub mod checkpoint;
pub mod checkpoint_binary;
pub mod config;
pub mod decode;
pub mod ensure;
pub mod entry;
pub mod etcd_flags;
pub mod generate;
pub mod host_etcd_flags;
pub mod inspect;
pub mod manual;
pub mod recover;
pub mod remote_read;
pub mod render;
pub mod start;
pub mod usage;
pub mod yaml;

use std::fmt;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::fsutil::{FsError, LockFile};

/// Stable, documented exit codes (docs/design.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Failed = 1,
    Usage = 2,
    NoSource = 3,
    Policy = 4,
    /// `ensure`: what a backup restore was decided on changed before anything was
    /// moved (etcd answers now, or the local data dir is not what it was).
    Changed = 5,
    /// `ensure`: the api-server answers and runs every required component, but some
    /// stay un-Ready after the boot grace: reported, not recovered.
    Unhealthy = 6,
    /// `ensure`: the cluster recovery lock could not be renewed in time; the recovery
    /// was stopped before another master could take the lock.
    LockLost = 7,
    /// `backup list --max-age`: the newest backup is damaged, or the newest whole one
    /// is older than the limit (or there is none).
    Stale = 8,
}

/// An error on its way to `main`, with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: Exit::Failed,
            error: e.into(),
        }
    }
}

/// A backup archive that will not open for a source: damaged or not an archive is no
/// source (exit 3); a wrong or unusable identity is the operator's input (exit 2).
pub(crate) fn unseal_failure(e: crate::backup::crypt::CryptError) -> Failure {
    let code = match e {
        crate::backup::crypt::CryptError::Archive { .. } => Exit::NoSource,
        _ => Exit::Usage,
    };
    Failure {
        code,
        error: e.into(),
    }
}

impl fmt::Display for Failure {
    /// One line: the context chain joined with ": ", newlines folded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:#}", self.error);
        f.write_str(&text.replace('\n', " "))
    }
}

/// Attaches an exit code to any error.
pub trait ExitWith<T> {
    fn exit_with(self, code: Exit) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ExitWith<T> for Result<T, E> {
    fn exit_with(self, code: Exit) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code,
            error: e.into(),
        })
    }
}

/// A usage error found after parsing (flags that clap cannot cross-check).
pub fn usage(msg: impl fmt::Display) -> Failure {
    Failure {
        code: Exit::Usage,
        error: anyhow::anyhow!("{msg}"),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "kubeboot",
    version,
    about = "Keeps a self-hosted Kubernetes control plane recoverable",
    after_help = "Exit codes: 0 done or healthy, 1 failed, 2 usage or config error, \
                  3 no recovery source could be read (or it holds no control plane), 4 refused by policy, \
                  5 ensure aborted a restore because the evidence changed, \
                  6 ensure reported un-Ready components it does not recover, \
                  7 ensure stopped a recovery whose cluster lock could not be renewed, \
                  8 backup list --max-age found no whole backup that recent."
)]
pub struct Cli {
    /// Log line format on stderr (journal entries are native, with fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where log lines go: `auto` is the journal's native protocol when systemd connected
    /// stderr to the journal ($JOURNAL_STREAM), else stderr; `stderr` forces stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "KUBEBOOT_LOG_TARGET",
        default_value_t = LogTarget::Auto
    )]
    pub log_target: LogTarget,
    /// Config file whose [COMMAND] table supplies flags not given on the command line
    /// [default: /etc/kubeboot/config.toml, if it exists].
    #[arg(long, global = true, env = "KUBEBOOT_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogTarget {
    Auto,
    Journal,
    Stderr,
}

impl From<LogTarget> for crate::systemd::journal::Target {
    fn from(t: LogTarget) -> Self {
        match t {
            LogTarget::Auto => Self::Auto,
            LogTarget::Journal => Self::Journal,
            LogTarget::Stderr => Self::Stderr,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the control plane from an api-server, etcd or a snapshot; write an asset dir
    Recover(recover::RecoverArgs),
    /// Look inside an etcd snapshot or data-dir db: revision, integrity, keys, objects
    Inspect(inspect::InspectArgs),
    /// Decode one value as the api-server stored it in etcd
    Decode(decode::DecodeArgs),
    /// Render a new self-hosted cluster's assets
    Render(render::RenderArgs),
    /// Boot a control plane from an asset dir and pivot to the self-hosted one
    Start(start::StartArgs),
    /// Take a verified etcd backup (snapshot + PKI), then apply retention
    Backup(backup::BackupArgs),
    /// At boot: check the control plane; if it is gone, recover and start it
    Ensure(Box<ensure::EnsureArgs>),
    /// The pod checkpointer daemon: keeps local copies of checkpointed pods
    Checkpoint(checkpoint::CheckpointArgs),
    /// Check the config file (/etc/kubeboot/config.toml)
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Check certificate expiry in an asset dir or a kubeconfig
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Man pages and shell completions (for packagers).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

impl Command {
    /// The subcommand's name, as the journal's `KUBEBOOT_COMMAND`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Recover(_) => "recover",
            Command::Inspect(_) => "inspect",
            Command::Decode(_) => "decode",
            Command::Render(_) => "render",
            Command::Start(_) => "start",
            Command::Backup(_) => "backup",
            Command::Ensure(_) => "ensure",
            Command::Checkpoint(_) => "checkpoint",
            Command::Config(_) => "config",
            Command::Certs(_) => "certs",
            Command::Generate(_) => "generate",
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Recover(args) => recover::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Render(args) => render::run(args),
        Command::Start(args) => start::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Ensure(args) => ensure::run(*args),
        Command::Checkpoint(args) => checkpoint::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Config(c) => config::run(c, cli.config),
        Command::Certs(c) => certs::run(c),
    }
}

/// Takes a command's lock file (creating its dir), or refuses with exit 4 when
/// another `kubeboot <command>` holds it.
pub fn take_lock(path: &std::path::Path, command: &str) -> Result<LockFile, Failure> {
    LockFile::try_acquire(path).map_err(|e| match e {
        FsError::Locked { .. } => Failure {
            code: Exit::Policy,
            error: anyhow::anyhow!("{e}: another `kubeboot {command}` is running on this node"),
        },
        other => other.into(),
    })
}

/// How a decoded object is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    Raw,
}

/// How a report is printed: `text` for people, `json` and `yaml` for scripts (the
/// shapes are documented in docs/cli.md and kept stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

/// `-o text|json|yaml` of a command that reports what it did; the shapes are in
/// docs/cli.md and kept stable.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputFlag {
    /// Output format: text (default), json or yaml (docs/cli.md). `-w` as in etcdctl
    #[arg(
        short,
        long,
        visible_short_alias = 'w',
        value_enum,
        default_value_t = Format::Text,
        value_name = "FORMAT"
    )]
    pub output: Format,
}

impl OutputFlag {
    /// Prints `text` lines, or `report` as JSON or YAML, on stdout.
    pub fn emit<T: serde::Serialize>(self, text: &[String], report: &T) -> anyhow::Result<()> {
        match self.output {
            Format::Text => {
                for line in text {
                    println!("{line}");
                }
            }
            f => print!("{}", render_report(report, f)?),
        }
        Ok(())
    }
}

/// Prints a report in a machine format, ending in a newline.
pub fn render_report<T: serde::Serialize>(report: &T, format: Format) -> anyhow::Result<String> {
    let value = serde_json::to_value(report)?;
    match format {
        Format::Yaml => Ok(yaml::quote_yaml11(&serde_yaml_ng::to_string(&value)?)),
        Format::Json | Format::Text => render_object(&value, Output::Json),
    }
}

/// Prints a decoded object as YAML (as kubectl does: `cmd::yaml`) or pretty JSON,
/// ending in a newline.
pub fn render_object(object: &serde_json::Value, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Json | Output::Raw => {
            let mut s = serde_json::to_string_pretty(object)?;
            s.push('\n');
            s
        }
        Output::Yaml => yaml::object(object)?,
    })
}

/// Parses durations such as `500ms`, `5s`, `2m` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 5s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "{s:?} has unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{s:?} is longer than the longest wait kubeboot accepts ({} days)",
            MAX_DURATION.as_secs() / 86_400
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// The longest duration any flag accepts. Deadlines are `Instant::now() + d`, which panics
/// past the clock's range; no wait of kubeboot's needs more than a year.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        // Bounded at parse time, so `Instant::now() + d` can never overflow.
        assert!(parse_duration("8785h").is_err());
        assert!(parse_duration("8784h").is_ok());
        let err = parse_duration("100000000000000000h").unwrap_err();
        assert!(err.contains("longest wait"), "{err}");
        assert!(parse_duration("1e300s").is_err());
    }

    #[test]
    fn failure_prints_one_line() {
        let f = Failure::from(anyhow::anyhow!("inner\nsecond").context("outer"));
        assert_eq!(f.to_string(), "outer: inner second");
        assert_eq!(f.code, Exit::Failed);
    }
}
