//! What `backup list` and `backup verify` report: each backup's age, size, revision,
//! where its copies are and what state it is in, checked again from the disk.
//!
//! States: `whole` (every byte matches `backup.json`; for an encrypted backup, its
//! members too, read with `--identity`), `damaged` (a file or the manifest is missing,
//! unreadable or changed), `encrypted-unverified` (the archive's ciphertext matches its
//! sha256, but no identity opened it in this run). The ciphertext check already proves
//! the bytes are the ones written; only opening it proves someone still holds a key.
//! A copy in the object store is `uploaded` (its `backup.json` is there: the upload
//! finished; its bytes are checked when it is downloaded, `backup verify URL`) or
//! `incomplete` (an upload that did not finish, which the next run resumes).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::catalog::{self, Found, Manifest};
use super::crypt::{self, CryptError, Identity};
use super::location::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Whole,
    Damaged,
    EncryptedUnverified,
    Uploaded,
    Incomplete,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Whole => "whole",
            State::Damaged => "damaged",
            State::EncryptedUnverified => "encrypted-unverified",
            State::Uploaded => "uploaded",
            State::Incomplete => "incomplete",
        }
    }

    /// Whether a restore can count on it (`--max-age`): its bytes are the ones written
    /// (an uploaded copy's are checked on the way down, and refused if they are not).
    pub fn usable(self) -> bool {
        !matches!(self, State::Damaged | State::Incomplete)
    }
}

/// One copy of a backup and its state there.
#[derive(Debug, Clone, Serialize)]
pub struct Copy {
    #[serde(flatten)]
    pub location: Location,
    pub state: State,
}

/// One backup as `backup list -o json` prints it (docs/cli.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub id: String,
    /// RFC 3339; from the manifest, else the name.
    pub taken_at: String,
    pub age_seconds: i64,
    pub revision: i64,
    pub keys: Option<usize>,
    pub size: u64,
    pub encrypted: bool,
    pub state: State,
    /// Why it is damaged or unverified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub locations: Vec<Copy>,
}

/// Every backup in `backup_dir`, newest (highest revision) first, each checked.
pub fn list(
    backup_dir: &Path,
    identity: Option<&Identity>,
    now: Timestamp,
) -> io::Result<Vec<Entry>> {
    let found = catalog::scan(backup_dir)?;
    Ok(found.iter().map(|f| entry(f, identity, now)).collect())
}

fn entry(f: &Found, identity: Option<&Identity>, now: Timestamp) -> Entry {
    let (named_at, named_rev) = catalog::parse_dir_name(&f.name).unwrap_or_default();
    let (state, reason) = match &f.manifest {
        Ok(m) => check(&f.dir, m, identity),
        Err(why) => (State::Damaged, Some(why.clone())),
    };
    let copy = Copy {
        location: Location::Local {
            path: f.dir.clone(),
        },
        state,
    };
    let named = (f.name.as_str(), named_at, named_rev);
    described(named, f.manifest.as_ref().ok(), (state, reason), copy, now)
}

/// An entry for backup `name` (its time and revision as named), described by its
/// manifest where there is one, with its first copy.
fn described(
    (name, named_at, named_rev): (&str, Timestamp, i64),
    m: Option<&Manifest>,
    (state, reason): (State, Option<String>),
    copy: Copy,
    now: Timestamp,
) -> Entry {
    let taken_at = m
        .and_then(|m| m.taken_at.parse::<Timestamp>().ok())
        .unwrap_or(named_at);
    Entry {
        id: name.to_string(),
        taken_at: taken_at.to_string(),
        age_seconds: now.duration_since(taken_at).as_secs(),
        revision: m.map_or(named_rev, |m| m.revision),
        keys: m.map(|m| m.keys),
        size: m.map_or(0, Manifest::size_on_disk),
        encrypted: m.is_some_and(|m| m.archive.is_some()),
        state,
        reason,
        locations: vec![copy],
    }
}

/// A backup in the object store, as `backup list` merges it: its name, whether the
/// upload finished, and its `backup.json` when one was read.
#[derive(Debug, Clone)]
pub struct RemoteCopy {
    pub name: String,
    pub url: String,
    pub whole: bool,
    pub manifest: Option<Manifest>,
}

/// `entries` (this node's, newest first) with the store's copies added: a copy of a
/// local backup is one more location; a backup only in the store is an entry of its own,
/// described by its `backup.json` (or its name, for an unfinished upload). Newest (highest
/// revision, then latest taken) first. Pure.
pub fn with_remote(mut entries: Vec<Entry>, remote: &[RemoteCopy], now: Timestamp) -> Vec<Entry> {
    for r in remote {
        let state = if r.whole {
            State::Uploaded
        } else {
            State::Incomplete
        };
        let copy = Copy {
            location: Location::Remote { url: r.url.clone() },
            state,
        };
        if let Some(e) = entries.iter_mut().find(|e| e.id == r.name) {
            e.locations.push(copy);
            continue;
        }
        let Some((named_at, named_rev)) = catalog::parse_dir_name(&r.name) else {
            continue;
        };
        let reason = (!r.whole).then(|| "the upload did not finish (no backup.json)".into());
        let named = (r.name.as_str(), named_at, named_rev);
        entries.push(described(
            named,
            r.manifest.as_ref(),
            (state, reason),
            copy,
            now,
        ));
    }
    entries.sort_by(|a, b| {
        (b.revision, &b.taken_at)
            .cmp(&(a.revision, &a.taken_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    entries
}

/// The state of the backup in `dir`, and why when it is not whole.
pub fn check(dir: &Path, m: &Manifest, identity: Option<&Identity>) -> (State, Option<String>) {
    match open(dir, m, identity, false) {
        Ok(_) => (State::Whole, None),
        Err(Problem::Damaged(why)) => (State::Damaged, Some(why)),
        Err(Problem::Locked(why)) => (State::EncryptedUnverified, Some(why)),
    }
}

/// Why a backup could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Its bytes are not what the manifest says.
    Damaged(String),
    /// Encrypted, and no identity given (or the one given opens nothing).
    Locked(String),
}

/// Checks every byte of the backup in `dir` against `m` and returns the snapshot's
/// bytes when `want_snapshot`. An encrypted backup is decrypted with `identity`; its
/// ciphertext is checked first, so a damaged archive is `Damaged` even without one.
pub fn open(
    dir: &Path,
    m: &Manifest,
    identity: Option<&Identity>,
    want_snapshot: bool,
) -> Result<Option<Vec<u8>>, Problem> {
    let Some(archive) = &m.archive else {
        catalog::verify(dir, m).map_err(Problem::Damaged)?;
        if !want_snapshot {
            return Ok(None);
        }
        let path = dir.join(&m.snapshot.path);
        return std::fs::read(&path)
            .map(Some)
            .map_err(|e| Problem::Damaged(format!("{}: {e}", path.display())));
    };
    let path = dir.join(&archive.path);
    catalog::check_file(&path, archive.size, &archive.sha256).map_err(Problem::Damaged)?;
    let Some(identity) = identity else {
        return Err(Problem::Locked(format!(
            "{}: encrypted; give --identity to open it",
            path.display()
        )));
    };
    let records: Vec<&catalog::FileRecord> = std::iter::once(&m.snapshot).chain(&m.pki).collect();
    let mut seen = vec![false; records.len()];
    let mut snapshot = None;
    let mut mismatch = None;
    crypt::read_members(&path, identity, |name, r| {
        let Some(i) = records.iter().position(|rec| rec.path == name) else {
            return Ok(true);
        };
        let keep = want_snapshot && name == m.snapshot.path;
        let (size, sha, bytes) = hash_reader(r, keep).map_err(|e| CryptError::Archive {
            path: path.display().to_string(),
            reason: format!("{name}: {e}"),
        })?;
        if let (Some(rec), Some(s)) = (records.get(i), seen.get_mut(i)) {
            let member = format!("{}: {name}", path.display());
            if let Err(why) = catalog::check_record(&member, size, &sha, rec.size, &rec.sha256) {
                mismatch = Some(why);
                return Ok(false);
            }
            *s = true;
        }
        if keep {
            snapshot = bytes;
        }
        Ok(true)
    })
    .map_err(|e| match e {
        CryptError::WrongIdentity { .. } | CryptError::Key(_) => Problem::Locked(e.to_string()),
        CryptError::Archive { .. } => Problem::Damaged(e.to_string()),
    })?;
    if let Some(why) = mismatch {
        return Err(Problem::Damaged(why));
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        let missing = records.get(i).map(|r| r.path.as_str()).unwrap_or_default();
        return Err(Problem::Damaged(format!(
            "{}: {missing} is missing from it",
            path.display()
        )));
    }
    Ok(snapshot)
}

/// Size and hex sha256 of what `r` yields, and the bytes when `keep`.
fn hash_reader(r: &mut dyn Read, keep: bool) -> io::Result<(u64, String, Option<Vec<u8>>)> {
    let mut hasher = Sha256::new();
    let mut kept = keep.then(Vec::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        if let Some(k) = kept.as_mut() {
            k.extend_from_slice(chunk);
        }
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize()), kept))
}

/// `--max-age`'s verdict, pure: `Ok` with a line for the log, or `Err` with why the
/// backups are not fresh — the newest backup (highest revision) is damaged, or the
/// newest usable one is older than `max_age`, or there is none.
pub fn freshness(entries: &[Entry], max_age: Duration) -> Result<String, String> {
    let Some(newest) = entries.first() else {
        return Err("no backup".into());
    };
    if newest.state == State::Damaged {
        return Err(format!(
            "the newest backup {} is damaged: {}",
            newest.id,
            newest.reason.as_deref().unwrap_or("unknown")
        ));
    }
    let Some(usable) = entries.iter().find(|e| e.state.usable()) else {
        return Err("no whole backup".into());
    };
    let age = Duration::from_secs(u64::try_from(usable.age_seconds).unwrap_or(0));
    let max = max_age.as_secs();
    if age > max_age {
        return Err(format!(
            "the newest whole backup {} is {}s old, older than --max-age ({max}s)",
            usable.id,
            age.as_secs()
        ));
    }
    Ok(format!(
        "the newest whole backup {} is {}s old (--max-age {max}s)",
        usable.id,
        age.as_secs()
    ))
}

/// What `backup verify` was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A backup dir (by ID under the backup dir, by path, or by a file in it).
    Backup(PathBuf),
    /// A lone snapshot or age archive, without a manifest.
    File(PathBuf),
}

/// Resolves `backup verify ID|FILE`: an ID names a backup in `backup_dir`; a path is a
/// backup dir, a file in one (`snapshot.db`, `backup.tar.age`), or a lone file.
pub fn resolve(backup_dir: &Path, target: &str) -> Result<Target, String> {
    if !target.contains('/') && catalog::parse_dir_name(target).is_some() {
        let dir = backup_dir.join(target);
        if dir.is_dir() {
            return Ok(Target::Backup(dir));
        }
        return Err(format!("{}: no such backup", dir.display()));
    }
    let path = PathBuf::from(target);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{target}: {e}"))?;
    if meta.is_dir() {
        return Ok(Target::Backup(path));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let in_backup = parent.is_some_and(|p| p.join(catalog::MANIFEST).is_file());
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match parent {
        Some(p) if in_backup && (name == catalog::SNAPSHOT || name == crypt::ARCHIVE) => {
            Ok(Target::Backup(p.to_path_buf()))
        }
        _ => Ok(Target::File(path)),
    }
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
