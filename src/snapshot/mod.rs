//! The etcd snapshot reader: reads an `etcdctl snapshot save` file or a raw data-dir
//! `member/snap/db` natively, read-only, so a master whose etcd is gone (and which may
//! have no etcd binary at all) can still recover from its backup.
//!
//! Four layers, one file each: [`trailer`] checks the sha256 that `etcdctl snapshot
//! save` appends; [`bbolt`] walks the B+tree file (never trusting an offset); [`mvcc`]
//! decodes etcd's revision-keyed history in bucket `key`; [`index`] keeps the latest
//! live entry per key as a sorted index into the file, so [`Snapshot::get`] and
//! [`Snapshot::prefix`] are binary searches that decode a key-value when it is asked
//! for. The file is mapped for a command that reads it once ([`Options::map_or_exit`]),
//! its pages given back as the walks read them, so that such a command holds the index
//! and a window of the file, not the file; it is read into memory otherwise.

pub mod bbolt;
pub mod index;
pub mod mvcc;
mod read;
pub mod status;
pub mod trailer;

use std::path::Path;
use std::sync::Arc;

use prost::bytes::Bytes;

use crate::fsutil::mapped::Mapped;
use crate::progress::Progress;

pub use mvcc::KeyValue;
pub use status::Status;

/// How to read a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Accept a file without the sha256 trailer (a raw `member/snap/db`), and do not
    /// verify the trailer when there is one.
    pub skip_hash_check: bool,
    /// Also compute [`Snapshot::status`] (a walk of every bucket), beside the parse.
    pub status: bool,
    /// Map the file instead of reading it into memory ([`crate::fsutil::mapped`]:
    /// six times cheaper than the copy); a page of it lost while mapped (truncated by
    /// another process, an I/O error) then ends the process with a one-line error and
    /// this exit code. For commands that read one file and exit (`inspect`,
    /// `recover`); `None` reads it, as `ensure` must, to pass over a bad file.
    pub map_or_exit: Option<i32>,
}

/// What is known about the file's integrity beyond its bbolt checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// The sha256 trailer matched the content.
    Verified,
    /// raw db without trailer, accepted because skip_hash_check
    NoTrailerSkipped,
    /// trailer present but skip_hash_check asked not to verify
    TrailerNotChecked,
}

impl Integrity {
    /// A short phrase for `inspect` and `kubeboot.json`.
    pub fn describe(&self) -> &'static str {
        match self {
            Integrity::Verified => "sha256 verified",
            Integrity::NoTrailerSkipped => {
                "no sha256 trailer (raw db), accepted with --skip-hash-check"
            }
            Integrity::TrailerNotChecked => {
                "sha256 trailer present, not checked (--skip-hash-check)"
            }
        }
    }
}

/// A snapshot failed to open. Every message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The cause is in the message and not also a `source()`, so a one-line chain does not
    /// print it twice.
    #[error("{file}: cannot read: {error}")]
    Io { file: String, error: std::io::Error },
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: Problem },
}

impl SnapshotError {
    /// What is wrong with the content, or `None` for an I/O error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            SnapshotError::Io { .. } => None,
            SnapshotError::Invalid { problem, .. } => Some(problem),
        }
    }
}

/// What is wrong with a snapshot's content (the file name is added by [`SnapshotError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("empty file")]
    Empty,
    #[error("not a bbolt file (bad magic {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported bbolt version {0} (expected 2)")]
    UnsupportedVersion(u32),
    #[error("both bbolt meta pages are invalid (checksum mismatch)")]
    BadChecksum,
    #[error("truncated: page {page} is beyond the end of the file ({len} bytes)")]
    Truncated { page: u64, len: usize },
    #[error("corrupt bbolt file: {0}")]
    Corrupt(String),
    #[error("sha256 mismatch: trailer says {expected}, content hashes to {actual}")]
    HashMismatch { expected: String, actual: String },
    #[error("missing sha256 trailer; for a raw data-dir member/snap/db pass --skip-hash-check")]
    MissingTrailer,
    #[error("bucket `{0}` missing")]
    MissingBucket(String),
    #[error("bad revision key {0} in bucket `key`")]
    BadRevisionKey(String),
    #[error("bad KeyValue protobuf at revision {revision}: {reason}")]
    BadKeyValue { revision: String, reason: String },
}

/// The latest live key-values of an etcd snapshot, sorted by key.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Named in errors.
    name: String,
    kvs: index::Index,
    revision: i64,
    compact_revision: Option<i64>,
    integrity: Integrity,
    /// The whole file, trailer included.
    file: Bytes,
    /// The bbolt file without its trailer; the values above are slices of it.
    body: Bytes,
    file_sha256: Option<[u8; 32]>,
    /// Computed while parsing when [`Options::status`] asked for it.
    status: Option<Status>,
}

/// A mapped file, shared by the `Bytes` that slice it and the parse that gives its pages
/// back.
struct Held(Arc<Mapped>);

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref().as_ref()
    }
}

/// Runs `f` on a thread of scope `s`; `None` when no thread could be made, and then
/// [`join`] runs it here.
pub(super) fn beside<'s, 'e, T: Send + 's>(
    s: &'s std::thread::Scope<'s, 'e>,
    name: &str,
    f: impl FnOnce() -> T + Send + 's,
) -> Option<std::thread::ScopedJoinHandle<'s, T>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(s, f)
        .ok()
}

/// The result of [`beside`]'s thread, or of `again` when there was none or it panicked.
fn join<T>(h: Option<std::thread::ScopedJoinHandle<'_, T>>, again: impl FnOnce() -> T) -> T {
    h.and_then(|h| h.join().ok()).unwrap_or_else(again)
}

/// A content problem of the file named `file`.
fn invalid(file: &str) -> impl FnOnce(Problem) -> SnapshotError + '_ {
    move |problem| SnapshotError::Invalid {
        file: file.to_string(),
        problem,
    }
}

/// A bbolt file holds at least its high-water mark of pages (`pgid`); a shorter one was
/// cut short (a copy or an upload that stopped), whatever else its bytes say.
fn check_length(meta: &bbolt::Meta, len: usize) -> Result<(), Problem> {
    let needed = meta.pgid.saturating_mul(u64::from(meta.page_size));
    if (len as u64) < needed {
        return Err(Problem::Truncated {
            page: meta.pgid.saturating_sub(1),
            len,
        });
    }
    Ok(())
}

impl Snapshot {
    /// Reads and parses the file at `path`; errors name it.
    pub fn open(path: &Path, opts: &Options) -> Result<Snapshot, SnapshotError> {
        Self::open_checked(path, opts, None)
    }

    /// [`Snapshot::open`] for a file just written from a stream whose trailer was checked
    /// as it arrived ([`trailer::Streaming`]): not hashed again. A proof made for another
    /// length is ignored and the file is hashed here.
    pub fn open_streamed(
        path: &Path,
        opts: &Options,
        checked: trailer::Verified,
    ) -> Result<Snapshot, SnapshotError> {
        Self::open_checked(path, opts, Some(checked))
    }

    fn open_checked(
        path: &Path,
        opts: &Options,
        checked: Option<trailer::Verified>,
    ) -> Result<Snapshot, SnapshotError> {
        let name = path.display().to_string();
        let proof = |len: usize| checked.filter(|c| c.len == len);
        // A terminal or systemd sees how far the read is; the line goes when it drops.
        // What cannot be mapped (a pipe, an empty file, a file system without mmap) is
        // read, and a file that cannot be opened is reported by the read.
        if let Some(code) = opts.map_or_exit
            && let Ok(file) = std::fs::File::open(path)
            && let Ok(Some(mapped)) = Mapped::map(&file, &name, code)
        {
            // Hashed beside the parse; there is no read to count.
            let len = mapped.as_ref().len();
            let mut p = Progress::new(format!("reading {name}"), len as u64);
            p.step(format!("checking {name}"));
            let checked = proof(len);
            let mapped = Arc::new(mapped);
            let bytes = Bytes::from_owner(Held(mapped.clone()));
            return Self::parse(&name, bytes, opts, checked, Some(&mapped));
        }
        let mut progress = None;
        let hash = !opts.skip_hash_check && checked.is_none();
        let (bytes, streamed) =
            read::read(path, &mut progress, hash).map_err(|error| SnapshotError::Io {
                file: name.clone(),
                error,
            })?;
        if let Some(p) = progress.as_mut() {
            p.step(format!("checking {name}"));
        }
        // A check that failed is made again by the parse, which reports it in its order
        // (a file that is not bbolt at all says so before "missing trailer").
        let checked = streamed
            .and_then(|s| s.trailer.ok())
            .or_else(|| proof(bytes.len()));
        Self::parse(&name, Bytes::from(bytes), opts, checked, None)
    }

    /// Parses a snapshot already in memory; `name` is used in errors.
    pub fn from_bytes(
        name: &str,
        bytes: Vec<u8>,
        opts: &Options,
    ) -> Result<Snapshot, SnapshotError> {
        Self::parse(name, Bytes::from(bytes), opts, None, None)
    }

    fn parse(
        name: &str,
        bytes: Bytes,
        opts: &Options,
        checked: Option<trailer::Verified>,
        mapped: Option<&Mapped>,
    ) -> Result<Snapshot, SnapshotError> {
        Self::build(bytes, opts, checked, mapped)
            .map(|s| Snapshot {
                name: name.to_string(),
                ..s
            })
            .map_err(invalid(name))
    }

    /// `mapped`: the mapping `bytes` are, told what is read so that it gives its pages
    /// back as the walks go, and once more when they are done (the lookups after
    /// them fault in only what they read).
    fn build(
        bytes: Bytes,
        opts: &Options,
        checked: Option<trailer::Verified>,
        mapped: Option<&Mapped>,
    ) -> Result<Snapshot, Problem> {
        if bytes.is_empty() {
            return Err(Problem::Empty);
        }
        let has_trailer = trailer::has_trailer(bytes.len());
        let integrity = match (has_trailer, opts.skip_hash_check) {
            (true, false) => Integrity::Verified,
            (true, true) => Integrity::TrailerNotChecked,
            (false, true) => Integrity::NoTrailerSkipped,
            (false, false) => {
                // A file that is not bbolt at all, or one cut short, says so, rather than
                // "missing trailer" (which would push the operator to skip the check).
                let db = bbolt::Db::open(&bytes)?;
                check_length(db.meta(), bytes.len())?;
                return Err(Problem::MissingTrailer);
            }
        };
        let body_len = bytes.len() - if has_trailer { trailer::TRAILER_LEN } else { 0 };
        if let Some(meta) = bbolt::Db::open(bytes.get(..body_len).unwrap_or_default())
            .ok()
            .map(|db| *db.meta())
        {
            check_length(&meta, body_len)?;
        }
        let file = bytes;
        let body = file.slice(..body_len);
        // With the status asked for, the parse hashes bucket `key` (nearly all of the
        // file) as it reads it, and the walk beside it does the other buckets.
        let read_through = |n| {
            if let Some(m) = mapped {
                m.read_through(n);
            }
        };
        let read = || {
            bbolt::Db::open(&body).and_then(|db| mvcc::read(&db, &body, opts.status, &read_through))
        };
        let verify = || trailer::verify_reading(&file, &read_through);
        let walk = || bbolt::Db::open(&body).and_then(|db| status::status_but_key(&db));
        let hash = integrity == Integrity::Verified;
        let proof = checked.filter(|_| hash).map(|c| c.file_sha256);
        // Up to three walks of the file at once: the parse here, the hash (unless it
        // was done as the file came in) and the status, each on its own thread.
        let (view, file_sha256, status) = std::thread::scope(|s| {
            let hasher = (hash && proof.is_none()).then(|| beside(s, "snapshot-sha256", verify));
            let walker = opts.status.then(|| beside(s, "snapshot-status", walk));
            let view = read();
            let file_sha256 = match hasher {
                Some(h) => join(h, verify).map(Some),
                None => Ok(proof),
            };
            let status = walker.map(|w| join(w, walk));
            (view, file_sha256, status)
        });
        if let Some(m) = mapped {
            m.give_back();
        }
        // A wrong hash is the root cause of any parse error, so it is reported first.
        let file_sha256 = file_sha256?;
        let view = view?;
        let status = status
            .transpose()?
            .map(|walked| walked.finish(view.key_bucket.as_ref()));
        Ok(Snapshot {
            name: String::new(),
            kvs: view.index,
            revision: view.revision,
            compact_revision: view.compact_revision,
            integrity,
            file,
            body,
            file_sha256,
            status,
        })
    }

    /// The sha256 of the whole file, trailer included, in hex: known when the trailer
    /// was checked (the same pass), not under `--skip-hash-check`.
    pub fn file_sha256(&self) -> Option<String> {
        self.file_sha256.map(hex::encode)
    }

    /// The file's bytes, trailer included, given back without a copy (a restore asset
    /// is the file as it was; copying it doubled `recover`'s memory).
    pub fn into_file(self) -> Bytes {
        let Snapshot { file, .. } = self;
        file
    }

    /// The store revision: what etcd would report as the header revision after a restore.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The revision of the last compaction, if the store was ever compacted.
    pub fn compact_revision(&self) -> Option<i64> {
        self.compact_revision
    }

    pub fn integrity(&self) -> Integrity {
        self.integrity
    }

    /// What `etcdctl snapshot status` reports: from the parse when [`Options::status`]
    /// asked for it, else a second walk of the file.
    pub fn status(&self) -> Result<Status, Problem> {
        match &self.status {
            Some(status) => Ok(status.clone()),
            None => status::status(&bbolt::Db::open(&self.body)?),
        }
    }

    /// Size of the file read, trailer included.
    pub fn file_len(&self) -> u64 {
        let trailer = match self.integrity {
            Integrity::NoTrailerSkipped => 0,
            _ => trailer::TRAILER_LEN,
        };
        (self.body.len() + trailer) as u64
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.kvs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kvs.is_empty()
    }

    /// The live value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, SnapshotError> {
        self.kvs
            .find(key)
            .and_then(|i| self.kvs.get(i))
            .transpose()
            .map_err(invalid(&self.name))
    }

    /// Live keys with this prefix, sorted, each with the length of its value: nothing
    /// is decoded.
    pub fn sizes<'a>(&'a self, prefix: &[u8]) -> impl Iterator<Item = (&'a [u8], u64)> + 'a {
        self.kvs.prefix(prefix).filter_map(|i| self.kvs.sizes(i))
    }

    /// Live keys with this prefix, sorted by key bytes; each is decoded as it comes.
    pub fn prefix<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<KeyValue, SnapshotError>> + 'a {
        self.kvs
            .prefix(prefix)
            .filter_map(|i| self.kvs.get(i))
            .map(|kv| kv.map_err(invalid(&self.name)))
    }
}
