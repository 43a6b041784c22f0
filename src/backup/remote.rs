//! Off-node copies of backups, in an object store (S3 and S3-compatible stores, Google
//! Cloud Storage, Azure Blob Storage, or a local path such as a mounted NFS share)
//! through the `object_store` crate: a master's own disk dies with it, and so would
//! every backup kept only there.
//!
//! Layout: `<url>/<backup name>/<file>`, the same names as in the backup dir. A backup is
//! uploaded file by file, its `backup.json` last: a remote backup without `backup.json`
//! is an upload that did not finish, never listed as whole, and the next run resumes it
//! (a file already there with the size the manifest gives is not sent again; big files
//! go in multipart uploads, which the store shows under their name only once complete).
//! "The next run" is any later `backup`: besides its own backup, it sends the earlier
//! ones this node kept whose copy never finished ([`to_resume`]).
//! Remote retention applies the local policy to the whole remote backups.
//!
//! Credentials come from where the crate's builders read them (`src/backup/store.rs`):
//! `AWS_*`, `GOOGLE_*` or `AZURE_*` variables (and the cloud's instance metadata), or
//! `--remote-option` keys. They are never logged: errors name the URL and the object,
//! which hold none.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use super::catalog::{self, Manifest};
use super::retention;

/// A backup kept on this node, as [`to_resume`] weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub name: String,
    /// Sealed with age: it may leave the node without `--allow-plaintext-upload`.
    pub encrypted: bool,
}

/// Which earlier backups kept here (newest first) to send again: those not whole in
/// the store, allowed to leave the node (sealed, or plain with consent), and that the
/// store's retention (`policy`, as [`Remote::prune`] applies it) would keep beside its
/// whole copies; sending one it would delete at once is wasted. Pure.
pub fn to_resume(
    kept: &[Kept],
    remote: &[RemoteBackup],
    plaintext_ok: bool,
    policy: &retention::Policy,
) -> Vec<String> {
    let candidates: Vec<&Kept> = kept
        .iter()
        .filter(|k| !remote.iter().any(|b| b.whole && b.name == k.name))
        .filter(|k| k.encrypted || plaintext_ok)
        .collect();
    let entry = |name: &str| {
        let (taken_at, revision) = catalog::parse_dir_name(name)?;
        Some(retention::Entry {
            name: name.to_string(),
            taken_at,
            revision,
        })
    };
    let union: Vec<retention::Entry> = remote
        .iter()
        .filter(|b| b.whole)
        .map(|b| b.name.as_str())
        .chain(candidates.iter().map(|k| k.name.as_str()))
        .filter_map(entry)
        .collect();
    let plan = retention::plan(&union, policy);
    candidates
        .into_iter()
        .filter(|k| plan.keep.iter().any(|(name, _)| *name == k.name))
        .map(|k| k.name.clone())
        .collect()
}

/// Files bigger than this go in a multipart upload, in parts of this size.
const PART: usize = 8 * 1024 * 1024;

/// One object store and the prefix backups go under.
#[derive(Debug, Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The URL as given, for messages.
    pub url: String,
}

/// A backup in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackup {
    pub name: String,
    /// Its `backup.json` is there: the upload finished.
    pub whole: bool,
}

impl Remote {
    /// Opens `url` (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `file:///dir`; `src/backup/store.rs` lists every form) with `options` (the crate's
    /// config keys of that store, e.g. `aws_endpoint`, `google_service_account`,
    /// `azure_storage_account_name`). `Err` is one line naming the URL or the option.
    pub fn open(url: &str, options: &[(String, String)]) -> Result<Remote, String> {
        let (store, prefix) = super::store::open(url, options)?;
        Ok(Remote {
            store: Arc::from(store),
            prefix,
            url: url.trim_end_matches('/').to_string(),
        })
    }

    fn object(&self, backup: &str, file: &str) -> ObjectPath {
        let mut p = self.prefix.clone().join(backup);
        for part in file.split('/') {
            p = p.join(part);
        }
        p
    }

    /// Where a backup's file is, for messages.
    pub fn address(&self, backup: &str, file: &str) -> String {
        format!("{}/{backup}/{file}", self.url)
    }

    /// Uploads the backup in `dir` (named `name`, described by `manifest`), resuming an
    /// earlier upload of it; returns how many files were sent.
    pub async fn upload(
        &self,
        dir: &Path,
        name: &str,
        manifest: &Manifest,
    ) -> Result<usize, String> {
        let mut files: Vec<(String, u64)> = match &manifest.archive {
            Some(a) => vec![(a.path.clone(), a.size)],
            None => {
                let mut f = vec![(manifest.snapshot.path.clone(), manifest.snapshot.size)];
                f.extend(manifest.pki.iter().map(|r| (r.path.clone(), r.size)));
                f
            }
        };
        let json = std::fs::metadata(dir.join(catalog::MANIFEST))
            .map_err(|e| format!("{}: {e}", dir.join(catalog::MANIFEST).display()))?
            .len();
        // Last: its presence is what makes the remote copy whole.
        files.push((catalog::MANIFEST.to_string(), json));
        // First a listing: a missing bucket or a refused credential is one clear error
        // here, whatever a given store does with a write to a bucket that is not there.
        self.list().await?;
        let mut sent = 0;
        for (file, size) in files {
            let at = self.object(name, &file);
            let there = self.store.head(&at).await.ok().map(|m| m.size);
            if there == Some(size) && file != catalog::MANIFEST {
                continue;
            }
            self.put_file(&dir.join(&file), &at)
                .await
                .map_err(|e| format!("uploading {}: {e}", self.address(name, &file)))?;
            sent += 1;
        }
        Ok(sent)
    }

    async fn put_file(&self, path: &Path, at: &ObjectPath) -> Result<(), String> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if bytes.len() <= PART {
            self.store
                .put(at, PutPayload::from(bytes))
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(at)
            .await
            .map_err(|e| e.to_string())?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        for chunk in bytes.chunks(PART) {
            w.wait_for_capacity(4).await.map_err(|e| e.to_string())?;
            w.write(chunk);
        }
        w.finish().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The backups in the store, newest name last.
    pub async fn list(&self) -> Result<Vec<RemoteBackup>, String> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| format!("listing {}: {e}", self.url))?;
        let mut out = Vec::new();
        for p in listed.common_prefixes {
            let Some(name) = p.filename().map(str::to_string) else {
                continue;
            };
            if catalog::parse_dir_name(&name).is_none() {
                continue;
            }
            let whole = self
                .store
                .head(&self.object(&name, catalog::MANIFEST))
                .await
                .is_ok();
            out.push(RemoteBackup { name, whole });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// One file of backup `name`, whole, in memory; `Err` names the object.
    async fn get(&self, name: &str, file: &str) -> Result<impl AsRef<[u8]> + use<>, String> {
        let at = self.object(name, file);
        let said = |e: object_store::Error| format!("{}: {e}", self.address(name, file));
        self.store
            .get(&at)
            .await
            .map_err(said)?
            .bytes()
            .await
            .map_err(said)
    }

    /// The `backup.json` of backup `name`, not checked against anything (for listing).
    pub async fn manifest(&self, name: &str) -> Result<Manifest, String> {
        let bytes = self.get(name, catalog::MANIFEST).await?;
        serde_json::from_slice(bytes.as_ref())
            .map_err(|e| format!("{}: {e}", self.address(name, catalog::MANIFEST)))
    }

    /// Applies `policy` to the whole remote backups; returns the names removed. An
    /// unfinished upload is left for the next run to resume.
    pub async fn prune(&self, policy: &retention::Policy) -> Result<Vec<String>, String> {
        let entries: Vec<retention::Entry> = self
            .list()
            .await?
            .into_iter()
            .filter(|b| b.whole)
            .filter_map(|b| {
                let (taken_at, revision) = catalog::parse_dir_name(&b.name)?;
                Some(retention::Entry {
                    name: b.name,
                    taken_at,
                    revision,
                })
            })
            .collect();
        let plan = retention::plan(&entries, policy);
        for name in &plan.delete {
            self.remove(name).await?;
        }
        Ok(plan.delete)
    }

    /// Deletes every object of backup `name`, its `backup.json` first, so a half-removed
    /// backup is never listed as whole.
    async fn remove(&self, name: &str) -> Result<(), String> {
        let manifest = self.object(name, catalog::MANIFEST);
        self.store
            .delete(&manifest)
            .await
            .map_err(|e| format!("removing {}: {e}", self.address(name, catalog::MANIFEST)))?;
        let dir = self.prefix.clone().join(name);
        let mut objects = self.store.list(Some(&dir));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(|e| format!("listing {}/{name}: {e}", self.url))?;
            self.store
                .delete(&meta.location)
                .await
                .map_err(|e| format!("removing {}/{}: {e}", self.url, meta.location))?;
        }
        Ok(())
    }

    /// Downloads whole backup `name` into `into` (a new dir), each file checked against
    /// the sizes and sha256 sums its `backup.json` gives.
    pub async fn download(&self, name: &str, into: &Path) -> Result<Manifest, String> {
        let json = self.get(name, catalog::MANIFEST).await?;
        let json = json.as_ref();
        let manifest: Manifest = serde_json::from_slice(json)
            .map_err(|e| format!("{}: {e}", self.address(name, catalog::MANIFEST)))?;
        let mut files: Vec<(String, u64, String)> = match &manifest.archive {
            Some(a) => vec![(a.path.clone(), a.size, a.sha256.clone())],
            None => {
                let s = &manifest.snapshot;
                let mut f = vec![(s.path.clone(), s.size, s.sha256.clone())];
                f.extend(
                    manifest
                        .pki
                        .iter()
                        .map(|r| (r.path.clone(), r.size, r.sha256.clone())),
                );
                f
            }
        };
        files.retain(|(p, _, _)| catalog::safe_relative(p));
        crate::fsutil::create_dir_all_with_mode(into, 0o700).map_err(|e| e.to_string())?;
        for (file, size, sha) in files {
            let got = self.get(name, &file).await?;
            let bytes = got.as_ref();
            let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
            if bytes.len() as u64 != size || got != sha {
                return Err(format!(
                    "{}: {} bytes with sha256 {got}, but backup.json says {size} bytes with sha256 {sha}",
                    self.address(name, &file),
                    bytes.len()
                ));
            }
            let path = into.join(&file);
            crate::fsutil::create_dir_all_with_mode(crate::fsutil::parent_of(&path), 0o700)
                .map_err(|e| e.to_string())?;
            crate::fsutil::write_atomic(&path, bytes, 0o600).map_err(|e| e.to_string())?;
        }
        crate::fsutil::write_atomic(&into.join(catalog::MANIFEST), json, 0o600)
            .map_err(|e| e.to_string())?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_copies_the_store_would_keep_are_resumed() {
        let kept = |name: &str, encrypted| Kept {
            name: name.into(),
            encrypted,
        };
        let remote = |name: &str, whole| RemoteBackup {
            name: name.into(),
            whole,
        };
        let here = [
            kept("20261203T030000Z-r50", true),
            kept("20261203T020000Z-r40", false),
            kept("20261203T010000Z-r30", true),
            kept("20261203T000000Z-r20", true),
        ];
        let store = [
            // A killed upload of r50; r30 is whole there; r20 never went.
            remote("20261203T030000Z-r50", false),
            remote("20261203T010000Z-r30", true),
        ];
        let last = |n| retention::Policy {
            keep_last: n,
            keep_daily: 0,
            keep_weekly: 0,
        };
        assert_eq!(
            to_resume(&here, &store, false, &last(4)),
            ["20261203T030000Z-r50", "20261203T000000Z-r20"]
        );
        // Only what the store keeps: the newest.
        assert_eq!(
            to_resume(&here, &store, false, &last(1)),
            ["20261203T030000Z-r50"]
        );
        // A plain backup goes only with consent.
        assert_eq!(to_resume(&here, &store, true, &last(4)).len(), 3);
        // A store with newer whole copies than all of them, keeping 2: nothing.
        let ahead = [
            remote("20261203T050000Z-r70", true),
            remote("20261203T040000Z-r60", true),
        ];
        assert!(to_resume(&here, &ahead, true, &last(2)).is_empty());
    }
}
