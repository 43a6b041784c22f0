//! A backup named by URL, for the commands that read one (`recover --etcd-backup-file`,
//! `inspect`, `backup verify`): the master that holds the backups may be the one that
//! is gone, and then the copy `backup --remote` put in object storage is the one left.
//!
//! The URL is the store's (`s3://bucket/prefix`, `file:///dir`: what `--remote` was
//! given) followed by one more segment: a backup's name (`20261202T101500Z-r950`), or
//! `latest`, the whole backup there with the highest etcd revision (its name's time
//! breaking ties, as `catalog::scan` orders the local ones: the revision, not a clock,
//! says which past is newest). An upload that never finished (no `backup.json`) is never
//! `latest`, and naming one is an error.
//!
//! The backup is downloaded into a private dir (0700, its files 0600) under the base the
//! caller gives, as `<private dir>/<backup name>/` so the private dir reads as a backup
//! dir holding that one backup, every file checked against the size and sha256 that its `backup.json`
//! records, and used as a local backup dir from there; the dir is removed when the
//! [`Fetched`] is dropped, on an error too.

use std::path::{Path, PathBuf};

use super::catalog::{self, Manifest};
use super::remote::{Remote, RemoteBackup};

/// The last segment that asks for the newest whole backup.
pub const LATEST: &str = "latest";

/// Whether a `--etcd-backup-file`/`FILE` argument names a backup by URL rather than a
/// path: it has a scheme. A local path never needs `://`.
pub fn is_url(arg: &str) -> bool {
    arg.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'))
}

/// Splits `url` into the store's URL and the backup's name (or [`LATEST`]). Pure.
pub fn split(url: &str) -> Result<(&str, &str), String> {
    let trimmed = url.trim_end_matches('/');
    let (root, name) = trimmed.rsplit_once('/').unwrap_or(("", ""));
    let named = name == LATEST || catalog::parse_dir_name(name).is_some();
    let has_store = root
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty());
    if !has_store || !named {
        return Err(format!(
            "{url}: name a backup after the store's URL: …/<backup name> (as `backup list` shows it) or …/{LATEST}"
        ));
    }
    Ok((root, name))
}

/// The whole backup `latest` means among `backups`. Pure.
pub fn newest(backups: &[RemoteBackup]) -> Option<&str> {
    backups
        .iter()
        .filter(|b| b.whole)
        .filter_map(|b| Some((catalog::parse_dir_name(&b.name)?, b.name.as_str())))
        .max_by_key(|((at, revision), _)| (*revision, *at))
        .map(|(_, name)| name)
}

/// Why a backup could not be fetched; the message is one line naming the URL or object.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL or an option cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The store cannot be read, or the backup is not there whole.
    #[error("{0}")]
    Unreadable(String),
}

/// A backup downloaded and checked; its private dir goes when this is dropped.
#[derive(Debug)]
pub struct Fetched {
    tmp: tempfile::TempDir,
    /// The backup's name in the store.
    pub name: String,
    /// Where it came from, for messages and the record of a recovery.
    pub address: String,
    pub manifest: Manifest,
}

impl Fetched {
    /// The local copy of the backup.
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join(&self.name)
    }

    /// A backup dir (as `backup --backup-dir`) that holds only this backup.
    pub fn backup_dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The file a snapshot reader takes: the age archive of an encrypted backup, else
    /// the snapshot.
    pub fn file(&self) -> PathBuf {
        self.dir().join(self.manifest.data_file())
    }
}

/// Downloads the backup `url` names into a new private dir under `base`. `options` are
/// the object store's config keys (as `backup --remote-option` takes them).
pub async fn fetch(
    url: &str,
    options: &[(String, String)],
    base: &Path,
) -> Result<Fetched, FetchError> {
    let (root, wanted) = split(url).map_err(FetchError::Usage)?;
    // Remote's messages name the flag `backup` takes the URL with; here it is an argument.
    let remote = Remote::open(root, options)
        .map_err(|e| FetchError::Usage(e.replacen("--remote ", "", 1)))?;
    let name = if wanted == LATEST {
        let listed = remote.list().await.map_err(FetchError::Unreadable)?;
        newest(&listed)
            .ok_or_else(|| FetchError::Unreadable(format!("{url}: no whole backup in {root}")))?
            .to_string()
    } else {
        wanted.to_string()
    };
    let tmp = tempfile::Builder::new()
        .prefix(".kubeboot-fetched-")
        // A killed run's download is then removed by the next one (`fsutil::remove_stale_temps`).
        .suffix(&format!(".kubeboot-tmp-{}", std::process::id()))
        .tempdir_in(base)
        .map_err(|e| {
            FetchError::Unreadable(format!("{}: a private dir for {url}: {e}", base.display()))
        })?;
    let manifest = remote
        .download(&name, &tmp.path().join(&name))
        .await
        .map_err(FetchError::Unreadable)?;
    Ok(Fetched {
        tmp,
        address: format!("{root}/{name}"),
        name,
        manifest,
    })
}

/// [`fetch`] for the synchronous commands, on a current-thread runtime.
pub fn fetch_blocking(
    url: &str,
    options: &[(String, String)],
    base: &Path,
) -> Result<Fetched, FetchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Unreadable(format!("starting the async runtime: {e}")))?
        .block_on(fetch(url, options, base))
}

/// `KEY=VALUE` flags (`--remote-option`) as the store's config pairs.
pub fn parse_options(flags: &[String]) -> Result<Vec<(String, String)>, String> {
    flags
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("--remote-option {kv:?}: not KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("s3://b/p/latest"));
        assert!(is_url("file:///var/backups/latest"));
        assert!(!is_url("/var/lib/kubeboot/backups/x/snapshot.db"));
        assert!(!is_url("./weird://name"));
        assert!(!is_url("snapshot.db"));
    }

    #[test]
    fn the_last_segment_is_a_backup_name_or_latest() {
        assert_eq!(
            split("s3://b/prefix/latest").unwrap(),
            ("s3://b/prefix", "latest")
        );
        assert_eq!(
            split("s3://b/20261202T101500Z-r950/").unwrap(),
            ("s3://b", "20261202T101500Z-r950")
        );
        assert_eq!(
            split("file:///srv/b/latest").unwrap(),
            ("file:///srv/b", "latest")
        );
        for bad in ["s3://b/prefix", "s3://latest", "s3://b/", "file:///latest"] {
            let e = split(bad).unwrap_err();
            assert!(e.starts_with(bad) && e.contains("…/latest"), "{bad}: {e}");
        }
    }

    #[test]
    fn latest_is_the_highest_revision_of_the_whole_ones() {
        let b = RemoteBackup::named;
        let backups = [
            // A clock reset to 2000 named the newest past oldest.
            b("20000101T000000Z-r950", true),
            b("20261202T101500Z-r900", true),
            b("20261202T111500Z-r100", true),
            // An upload that did not finish is never picked.
            b("20261202T121500Z-r990", false),
            // Same revision: the later name wins.
            b("20000101T000001Z-r950", true),
        ];
        assert_eq!(newest(&backups), Some("20000101T000001Z-r950"));
        assert_eq!(newest(&backups[3..4]), None);
        assert_eq!(newest(&[]), None);
    }

    #[test]
    fn options_are_key_value_pairs() {
        let got = parse_options(&["aws_endpoint=http://127.0.0.1:9000".into()]).unwrap();
        assert_eq!(
            got,
            vec![("aws_endpoint".into(), "http://127.0.0.1:9000".into())]
        );
        assert!(parse_options(&["novalue".into()]).is_err());
        assert!(parse_options(&["=v".into()]).is_err());
    }
}
