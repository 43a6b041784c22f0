//! `kubeboot backup list|verify|prune` (and the old `backup --list`): what is in the
//! backup dir, printed for people or (`-o json`) for scripts, with exit codes a
//! monitoring check can act on (docs/backup.md, docs/cli.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::backup::{
    BackupArgs, ListArgs, ListFormat, PruneArgs, VerifyArgs, load_identity, policy, report_format,
};
use super::{Exit, ExitWith, Failure, render_report, usage};
use crate::backup::catalog;
use crate::backup::crypt::{self, Identity};
use crate::backup::inventory::{self, Entry, Problem, State, Target};
use crate::backup::{self as bk, retention::Policy};
use crate::encryption::EncryptionConfig;

/// `backup list -o json`'s document (docs/cli.md).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listing<'a> {
    backup_dir: &'a Path,
    /// The store whose copies are listed too (`--remote`).
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<&'a str>,
    backups: &'a [Entry],
    /// With `--max-age`: whether the backups are fresh, and why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    fresh: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    freshness: Option<String>,
}

pub fn list(args: &BackupArgs, list: &ListArgs) -> Result<(), Failure> {
    let dir = list.backup_dir.as_ref().unwrap_or(&args.backup_dir);
    let identity = load_identity(list.identity.as_ref().or(args.identity.as_ref()))?;
    let mut entries = scan(dir, identity.as_ref())?;
    if let Some(url) = &args.remote {
        entries = with_remote(args, url, entries)?;
    }
    let verdict = list.max_age.map(|max| inventory::freshness(&entries, max));
    let mut out = std::io::stdout().lock();
    match list.output {
        ListFormat::Text => out.write_all(table(&entries).as_bytes())?,
        ListFormat::Json => {
            let doc = Listing {
                backup_dir: dir,
                remote: args.remote.as_deref(),
                backups: &entries,
                fresh: verdict.as_ref().map(Result::is_ok),
                freshness: verdict.as_ref().map(|v| match v {
                    Ok(s) | Err(s) => s.clone(),
                }),
            };
            out.write_all(render_report(&doc, report_format(list.output))?.as_bytes())?;
        }
    }
    out.flush()?;
    match verdict {
        Some(Err(why)) => Err(Failure {
            code: Exit::Stale,
            error: anyhow::anyhow!("{}: {why}", dir.display()),
        }),
        Some(Ok(line)) => {
            tracing::info!("{line}");
            Ok(())
        }
        None => Ok(()),
    }
}

/// `backup --list`, kept for the scripts that call it: its old lines (`ok`, `DAMAGED`,
/// `UNREADABLE`; an intact encrypted backup is `ok` with `(encrypted, not opened)`), and
/// exit 1 when no backup is whole.
pub fn old_list(args: &BackupArgs) -> Result<(), Failure> {
    tracing::warn!("`kubeboot backup --list` is the old form of `kubeboot backup list`");
    let identity = load_identity(args.identity.as_ref())?;
    let found = catalog::scan(&args.backup_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.backup_dir.display()))?;
    let mut whole = 0;
    let mut out = std::io::stdout().lock();
    for f in &found {
        let state = match &f.manifest {
            Ok(m) => match inventory::check(&f.dir, m, identity.as_ref()) {
                (State::Damaged, why) => format!("DAMAGED  {}", why.unwrap_or_default()),
                (state, _) => {
                    whole += 1;
                    let sealed = if state == State::Whole {
                        ""
                    } else {
                        "  (encrypted, not opened)"
                    };
                    format!(
                        "ok  {}  revision {}  {} keys  {} PKI file(s){sealed}",
                        m.taken_at,
                        m.revision,
                        m.keys,
                        m.pki.len()
                    )
                }
            },
            Err(reason) => format!("UNREADABLE  {reason}"),
        };
        writeln!(out, "{}  {state}", f.dir.display())?;
    }
    out.flush()?;
    if whole == 0 {
        return Err(anyhow::anyhow!("{}: no whole backup", args.backup_dir.display()).into());
    }
    Ok(())
}

/// The store's copies (`--remote`) added to this node's list. A store that cannot be
/// listed is a warning: the local list still stands, and says nothing about the store.
fn with_remote(args: &BackupArgs, url: &str, entries: Vec<Entry>) -> Result<Vec<Entry>, Failure> {
    let remote = super::backup::open_store(url, &args.remote_option)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let copies = runtime.block_on(async {
        let listed = remote.list().await?;
        let mut copies = Vec::new();
        for b in listed {
            // Only a backup that is not also here needs its backup.json read.
            let manifest = match b.whole && !entries.iter().any(|e| e.id == b.name) {
                true => Some(remote.manifest(&b.name).await?),
                false => None,
            };
            copies.push(inventory::RemoteCopy {
                url: format!("{}/{}", remote.url, b.name),
                name: b.name,
                whole: b.whole,
                manifest,
            });
        }
        Ok::<_, String>(copies)
    });
    match copies {
        Ok(copies) => Ok(inventory::with_remote(
            entries,
            &copies,
            jiff::Timestamp::now(),
        )),
        Err(e) => {
            tracing::warn!("the store's copies are not listed: {e}");
            Ok(entries)
        }
    }
}

fn scan(dir: &Path, identity: Option<&Identity>) -> Result<Vec<Entry>, Failure> {
    inventory::list(dir, identity, jiff::Timestamp::now())
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()).into())
}

/// The text table: one line a backup, newest first, the reason after a bad state.
fn table(entries: &[Entry]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "AGE".into(),
        "REVISION".into(),
        "SIZE".into(),
        "LOCATION".into(),
        "STATE".into(),
    ]];
    for e in entries {
        let locations: Vec<&str> = e.locations.iter().map(|c| c.location.kind()).collect();
        rows.push([
            e.id.clone(),
            human_age(e.age_seconds),
            e.revision.to_string(),
            human_size(e.size),
            locations.join(","),
            e.state.word().to_string(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        let reason = i
            .checked_sub(1)
            .and_then(|j| entries.get(j))
            .and_then(|e| e.reason.as_deref());
        if let Some(reason) = reason {
            line.push_str(reason);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn human_size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes < 1 << 20 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

/// `backup verify`: exit 0 whole and restorable, 1 damaged or not restorable, 2 not
/// found, encrypted without an identity, or an identity that opens nothing.
pub fn verify(args: &BackupArgs, verify: &VerifyArgs) -> Result<(), Failure> {
    let dir = verify.backup_dir.as_ref().unwrap_or(&args.backup_dir);
    let identity = load_identity(verify.identity.as_ref().or(args.identity.as_ref()))?;
    let encryption = match &args.encryption_provider_config {
        Some(path) => Some(EncryptionConfig::from_file(path).exit_with(Exit::Usage)?),
        None => None,
    };
    // A URL is downloaded (every file checked against its backup.json) and verified
    // like a local backup dir; one that cannot be fetched whole is exit 1, damaged.
    // `backup --remote-option … verify URL` works too: the subcommand's own win.
    let remote = match verify.remote.remote_option.is_empty() {
        true => super::remote_read::RemoteRead {
            remote_option: args.remote_option.clone(),
        },
        false => verify.remote.clone(),
    };
    let fetched = remote.fetch_if_url(
        Path::new(&verify.target),
        &std::env::temp_dir(),
        Exit::Failed,
    )?;
    let target = match &fetched {
        Some(f) => Target::Backup(f.dir()),
        None => inventory::resolve(dir, &verify.target).map_err(usage)?,
    };
    let (name, bytes, expect_revision) = match &target {
        Target::Backup(b) => {
            let m = catalog::read_manifest(b).map_err(|e| anyhow::anyhow!(e))?;
            let bytes = inventory::open(b, &m, identity.as_ref(), true).map_err(problem)?;
            let name = match &fetched {
                Some(f) => format!("{}/{}", f.address, m.snapshot.path),
                None => b.join(&m.snapshot.path).display().to_string(),
            };
            (name, bytes.unwrap_or_default(), Some(m.revision))
        }
        Target::File(f) => lone_file(f, identity.as_ref())?,
    };
    let r = bk::restorable(&name, bytes, &args.etcd.etcd_prefix, encryption.as_ref())
        .map_err(|why| anyhow::anyhow!("{name}: not restorable: {why}"))?;
    if let Some(rev) = expect_revision.filter(|rev| *rev != r.revision) {
        return Err(
            anyhow::anyhow!("{name}: revision {}, the manifest says {rev}", r.revision).into(),
        );
    }
    println!(
        "{}: whole, restorable ({}); revision {}, {} keys",
        verify.target,
        r.components.join(", "),
        r.revision,
        r.keys
    );
    Ok(())
}

fn problem(p: Problem) -> Failure {
    match p {
        Problem::Damaged(why) => anyhow::anyhow!("{why}").into(),
        Problem::Locked(why) => usage(why),
    }
}

/// A snapshot or age archive outside a backup dir: its bytes (the archive's
/// `snapshot.db`), without a manifest to check them against.
fn lone_file(
    file: &PathBuf,
    identity: Option<&Identity>,
) -> Result<(String, Vec<u8>, Option<i64>), Failure> {
    let name = file.display().to_string();
    if crypt::is_age_file(file).map_err(|e| anyhow::anyhow!("{name}: {e}"))? {
        let identity = identity
            .ok_or_else(|| usage(format!("{name}: encrypted; give --identity to open it")))?;
        let bytes = crypt::read_member(file, identity, catalog::SNAPSHOT).map_err(|e| match e {
            crypt::CryptError::Archive { .. } => Failure::from(e),
            other => usage(other),
        })?;
        return Ok((format!("{name}: {}", catalog::SNAPSHOT), bytes, None));
    }
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok((name, bytes, None))
}

/// `backup prune [--dry-run]`: retention as a backup run applies it. Without
/// `--dry-run` it takes the backup lock (a running backup is never pruned under).
pub fn prune(args: &BackupArgs, prune: &PruneArgs) -> Result<(), Failure> {
    let dir = prune.backup_dir.as_ref().unwrap_or(&args.backup_dir);
    let base = policy(args);
    let p = Policy {
        keep_last: prune.keep_last.unwrap_or(base.keep_last),
        keep_daily: prune.keep_daily.unwrap_or(base.keep_daily),
        keep_weekly: prune.keep_weekly.unwrap_or(base.keep_weekly),
    };
    if p.keep_last == 0 {
        return Err(usage(
            "--keep-last must be at least 1: the newest backup is always kept",
        ));
    }
    let _lock = if prune.dry_run {
        None
    } else {
        Some(super::take_lock(&args.lock_file, "backup")?)
    };
    let (plan, unreadable) = bk::prune_plan(dir, &p)?;
    let mut out = std::io::stdout().lock();
    for (name, why) in &plan.keep {
        writeln!(out, "keep    {name}  ({why})")?;
    }
    let verb = if prune.dry_run {
        "would remove"
    } else {
        "remove"
    };
    for name in &plan.delete {
        writeln!(out, "{verb:<7} {name}")?;
    }
    for (path, why) in &unreadable {
        writeln!(out, "leave   {}  (not readable: {why})", path.display())?;
    }
    out.flush()?;
    if !prune.dry_run {
        bk::apply_prune(dir, &plan)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_at_a_glance() {
        assert_eq!(human_age(-5), "0s");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(61), "1m");
        assert_eq!(human_age(3 * 3600 + 10 * 60), "3h10m");
        assert_eq!(human_age(2 * 86_400 + 4 * 3600), "2d4h");
        assert_eq!(human_size(512), "0.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
