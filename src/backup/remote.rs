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

use std::collections::BTreeMap;
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
/// Parts in flight at once.
const PARALLEL: usize = 4;

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
    /// Its objects (path under the backup, `/`-separated) and their sizes.
    pub files: BTreeMap<String, u64>,
}

impl RemoteBackup {
    /// A backup known by name only (in tests, and one just uploaded whole).
    pub fn named(name: &str, whole: bool) -> RemoteBackup {
        RemoteBackup {
            name: name.to_string(),
            whole,
            files: BTreeMap::new(),
        }
    }
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
    /// earlier upload of it; returns how many files were sent. `listed` is the store's
    /// [`Remote::list`] from this run: it says what is there already, and that the
    /// bucket and the credentials work (a missing bucket is one clear error there,
    /// whatever a given store does with a write to a bucket that is not there).
    pub async fn upload(
        &self,
        dir: &Path,
        name: &str,
        manifest: &Manifest,
        listed: &[RemoteBackup],
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
        let there = listed.iter().find(|b| b.name == name);
        let mut sent = 0;
        for (file, size) in files {
            let done = there.and_then(|b| b.files.get(&file)) == Some(&size);
            if done && file != catalog::MANIFEST {
                continue;
            }
            self.put_file(&dir.join(&file), &self.object(name, &file), size)
                .await
                .map_err(|e| format!("uploading {}: {e}", self.address(name, &file)))?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Sends the file at `path` (`size` bytes) straight from the disk: at most
    /// [`PARALLEL`] parts of [`PART`] bytes in memory, whatever the file's size. A file
    /// of at most one part goes in one put, one request (a multipart upload takes at
    /// least three: begin, a part, complete).
    async fn put_file(&self, path: &Path, at: &ObjectPath, size: u64) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        let said = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut file = tokio::fs::File::open(path).await.map_err(said)?;
        if size <= PART as u64 {
            let mut bytes = Vec::with_capacity(PART);
            file.read_to_end(&mut bytes).await.map_err(said)?;
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
        let mut part = vec![0u8; PART];
        loop {
            let mut filled = 0;
            while filled < PART {
                let n = file
                    .read(part.get_mut(filled..).unwrap_or_default())
                    .await
                    .map_err(said)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            if let Err(e) = w.wait_for_capacity(PARALLEL).await {
                w.abort().await.ok();
                return Err(e.to_string());
            }
            w.write(part.get(..filled).unwrap_or_default());
        }
        w.finish().await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The backups in the store, newest name last, from one listing of every object
    /// under the prefix (not a request per backup: a store keeps weeks of them).
    pub async fn list(&self) -> Result<Vec<RemoteBackup>, String> {
        let mut found: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut objects = self.store.list(Some(&self.prefix));
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(|e| format!("listing {}: {e}", self.url))?;
            let mut parts = meta
                .location
                .prefix_match(&self.prefix)
                .into_iter()
                .flatten();
            let Some(name) = parts.next().map(|p| p.as_ref().to_string()) else {
                continue;
            };
            if catalog::parse_dir_name(&name).is_none() {
                continue;
            }
            let file: Vec<String> = parts.map(|p| p.as_ref().to_string()).collect();
            found
                .entry(name)
                .or_default()
                .insert(file.join("/"), meta.size);
        }
        Ok(found
            .into_iter()
            .map(|(name, files)| RemoteBackup {
                whole: files.contains_key(catalog::MANIFEST),
                name,
                files,
            })
            .collect())
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

    /// Applies `policy` to the whole backups of `listed` (this run's listing, with what
    /// it uploaded since); returns the names removed. An unfinished upload is left for
    /// the next run to resume.
    pub async fn prune(
        &self,
        policy: &retention::Policy,
        listed: &[RemoteBackup],
    ) -> Result<Vec<String>, String> {
        let entries: Vec<retention::Entry> = listed
            .iter()
            .filter(|b| b.whole)
            .filter_map(|b| {
                let (taken_at, revision) = catalog::parse_dir_name(&b.name)?;
                Some(retention::Entry {
                    name: b.name.clone(),
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
    /// backup is never listed as whole. One already gone (another master pruned the
    /// same store since it was listed) is no error.
    async fn remove(&self, name: &str) -> Result<(), String> {
        let manifest = self.object(name, catalog::MANIFEST);
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                return Err(format!(
                    "removing {}: {e}",
                    self.address(name, catalog::MANIFEST)
                ));
            }
        }
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutResult,
    };

    /// An in-memory store that counts the single puts and the multipart uploads begun.
    #[derive(Debug, Default)]
    struct Counted {
        inner: InMemory,
        puts: AtomicUsize,
        multiparts: AtomicUsize,
    }

    impl std::fmt::Display for Counted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counted({})", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Counted {
        async fn put_opts(
            &self,
            at: &ObjectPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_opts(at, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            at: &ObjectPath,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.multiparts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_multipart_opts(at, opts).await
        }

        async fn get_opts(
            &self,
            at: &ObjectPath,
            opts: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(at, opts).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
            opts: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, opts).await
        }
    }

    /// A file of up to one part goes in one request (a put), a bigger one in parts;
    /// either way the object holds the file's bytes.
    #[test]
    fn a_file_of_one_part_goes_in_one_put_a_bigger_one_in_parts() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(Counted::default());
        let remote = Remote {
            store: store.clone(),
            prefix: ObjectPath::from("p"),
            url: "memory:///p".into(),
        };
        // (size, puts, multipart uploads) counted after it.
        for (size, puts, multiparts) in [
            (0, 1, 0),
            (1, 2, 0),
            (PART, 3, 0),
            (PART + 1, 3, 1),
            (2 * PART + 3, 3, 2),
        ] {
            let path = work.path().join(format!("f{size}"));
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
            let at = remote.object("b", &format!("f{size}"));
            rt.block_on(remote.put_file(&path, &at, size as u64))
                .unwrap_or_else(|e| panic!("{size}: {e}"));
            assert_eq!(store.puts.load(Ordering::SeqCst), puts, "{size}");
            assert_eq!(
                store.multiparts.load(Ordering::SeqCst),
                multiparts,
                "{size}"
            );
            let got = rt
                .block_on(async { store.inner.get(&at).await?.bytes().await })
                .unwrap_or_else(|e| panic!("{size}: {e}"));
            assert!(got.as_ref() == bytes.as_slice(), "{size}: the bytes differ");
        }
    }

    #[test]
    fn unfinished_copies_the_store_would_keep_are_resumed() {
        let kept = |name: &str, encrypted| Kept {
            name: name.into(),
            encrypted,
        };
        let remote = RemoteBackup::named;
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
