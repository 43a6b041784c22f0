//! `kubeboot certs check`: every certificate of an asset dir (its `*.crt` files and the
//! certificates inside its kubeconfigs) or of a kubeconfig, with its expiry; non-zero
//! when one expires within `--warn-within` (`crate::certs`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use kube::config::Kubeconfig;

use super::{Exit, ExitWith, Failure, OutputFlag, usage};
use crate::certs::{self, Found, Lifetime};

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List every certificate's expiry; fail when one expires within --warn-within
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// An asset dir (of `render` or `recover`) or a certificate file
    #[arg(value_name = "PATH", value_hint = clap::ValueHint::AnyPath)]
    pub paths: Vec<PathBuf>,
    /// A kubeconfig whose embedded or referenced certificates are checked too
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,
    /// Fail (exit 1) when a certificate expires within this lifetime (90d, 1y)
    #[arg(long, default_value = "30d", value_parser = certs::parse_lifetime, value_name = "LIFETIME")]
    pub warn_within: Lifetime,
    #[command(flatten)]
    pub output: OutputFlag,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    warn_within_days: i64,
    certificates: &'a [Found],
    expiring: Vec<&'a Found>,
}

pub fn run(cmd: CertsCommand) -> Result<(), Failure> {
    let CertsCommand::Check(args) = cmd;
    if args.paths.is_empty() && args.kubeconfig.is_none() {
        return Err(usage(
            "give an asset dir or certificate file, or --kubeconfig",
        ));
    }
    let now = jiff::Timestamp::now();
    let mut found = Vec::new();
    for path in &args.paths {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{}", path.display()))
            .exit_with(Exit::Usage)?;
        if meta.is_dir() {
            found.extend(in_dir(path, now)?);
        } else {
            let bytes = read(path)?;
            found.extend(
                certs::from_pem(&path.display().to_string(), &bytes, now)
                    .map_err(anyhow::Error::msg)?,
            );
        }
    }
    if let Some(k) = &args.kubeconfig {
        found.extend(in_kubeconfig(k, &k.display().to_string(), now)?);
    }
    found.sort_by(|a, b| a.days_left.cmp(&b.days_left).then(a.source.cmp(&b.source)));
    let days = args.warn_within.approx_days();
    let soon = certs::expiring(&found, days);
    let lines: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "{}  {}{}  expires {}  ({} days left)",
                f.source,
                f.subject,
                if f.ca { " (CA)" } else { "" },
                f.not_after,
                f.days_left
            )
        })
        .collect();
    let report = Report {
        warn_within_days: days,
        certificates: &found,
        expiring: soon.clone(),
    };
    args.output.emit(&lines, &report)?;
    match soon.first() {
        None => Ok(()),
        Some(first) => Err(Failure {
            code: Exit::Failed,
            error: anyhow::anyhow!(
                "{} certificate(s) expire within {}: the first, {} ({}), on {}",
                soon.len(),
                args.warn_within,
                first.source,
                first.subject,
                first.not_after
            ),
        }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .with_context(|| format!("{}", path.display()))
        .exit_with(Exit::Usage)
}

/// The `*.crt` files under `dir` and the kubeconfigs (`kubeconfig`, `*.kubeconfig`).
fn in_dir(dir: &Path, now: jiff::Timestamp) -> Result<Vec<Found>, Failure> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .with_context(|| format!("{}", d.display()))
            .exit_with(Exit::Usage)?;
        for e in entries {
            let p = e.with_context(|| format!("{}", d.display()))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let meta = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() && name.ends_with(".crt") {
                let label = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                found.extend(certs::from_pem(&label, &read(&p)?, now).map_err(anyhow::Error::msg)?);
            } else if meta.is_file() && (name == "kubeconfig" || name.ends_with(".kubeconfig")) {
                let shown = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                found.extend(in_kubeconfig(&p, &shown, now)?);
            }
        }
    }
    Ok(found)
}

/// The certificates a kubeconfig carries: each cluster's CA and each user's client
/// certificate, embedded (`…-data`) or as a file it names (relative to the kubeconfig).
fn in_kubeconfig(path: &Path, shown: &str, now: jiff::Timestamp) -> Result<Vec<Found>, Failure> {
    let kc = Kubeconfig::read_from(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        .exit_with(Exit::Usage)?;
    let base = crate::fsutil::parent_of(path);
    let mut found = Vec::new();
    let mut add =
        |entry: String, data: Option<&String>, file: Option<&String>| -> Result<(), Failure> {
            let label = format!("{shown} ({entry})");
            let bytes = match (data, file) {
                (Some(d), _) => base64::engine::general_purpose::STANDARD
                    .decode(d.trim())
                    .map_err(|e| anyhow::anyhow!("{label}: not base64: {e}"))
                    .exit_with(Exit::Usage)?,
                // A file it names that is not on this host (the in-cluster kubeconfig's
                // service-account CA lives in pods) is said and passed over.
                (None, Some(f)) if !base.join(f).exists() => {
                    tracing::warn!("{label}: {f} is not on this host; not checked");
                    return Ok(());
                }
                (None, Some(f)) => read(&base.join(f))?,
                (None, None) => return Ok(()),
            };
            found.extend(certs::from_pem(&label, &bytes, now).map_err(anyhow::Error::msg)?);
            Ok(())
        };
    for c in &kc.clusters {
        if let Some(cl) = &c.cluster {
            add(
                format!("cluster {}", c.name),
                cl.certificate_authority_data.as_ref(),
                cl.certificate_authority.as_ref(),
            )?;
        }
    }
    for u in &kc.auth_infos {
        if let Some(a) = &u.auth_info {
            add(
                format!("user {}", u.name),
                a.client_certificate_data.as_ref(),
                a.client_certificate.as_ref(),
            )?;
        }
    }
    Ok(found)
}
