//! What `etcdctl snapshot status` reports, computed the same way, so an operator can set
//! `kubeboot inspect` beside it and see the same hash, revision, key count and size
//! (etcd's `etcdutl/snapshot` `Status`, read through the code search; nothing copied):
//!
//! - the hash is CRC-32C over, for every top-level bucket in key order, its name and then
//!   each of its entries' key and value (a nested bucket's value counts as empty, as
//!   bbolt's `ForEach` passes nil for it);
//! - total keys counts every entry of every bucket, so every revision of every key and
//!   etcd's bookkeeping (`meta`, `members`, `lease`, ...), not the live keys;
//! - the revision is the main revision of the last entry of bucket `key`, tombstones
//!   included;
//! - the size is the bbolt high-water mark (`pgid × page size`), not the file's length;
//! - the version is `meta/storageVersion`, written by etcd 3.6 and later.

use super::Problem;
use super::bbolt::Db;

/// `etcdctl snapshot status`'s fields, under its JSON names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// CRC-32C over a run of bytes, and how many went in: two runs are joined with
/// `crc32c_combine`, which needs the second one's length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crc {
    pub hash: u32,
    pub len: usize,
}

impl Crc {
    fn add(&mut self, data: &[u8]) {
        self.hash = crc32c::crc32c_append(self.hash, data);
        self.len = self.len.saturating_add(data.len());
    }

    /// `self`, then `next`.
    fn then(self, next: Crc) -> Crc {
        Crc {
            hash: crc32c::crc32c_combine(self.hash, next.hash, next.len),
            len: self.len.saturating_add(next.len),
        }
    }
}

/// Bucket `key` as the parse saw it (`mvcc::read`), so that `inspect` walks the
/// biggest bucket once: its entries' CRC-32C, how many entries, and the main revision
/// of the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyBucket {
    pub crc: Crc,
    pub entries: u64,
    pub last_main: i64,
}

impl KeyBucket {
    /// One entry, in the bucket's order.
    pub fn add(&mut self, key: &[u8], value: &[u8], main: i64) {
        self.crc.add(key);
        self.crc.add(value);
        self.entries += 1;
        self.last_main = main;
    }
}

/// Walks every bucket of `db` once.
pub fn status(db: &Db<'_>) -> Result<Status, Problem> {
    walk(db, false).map(|w| w.finish(None))
}

/// Every bucket but the entries of bucket `key`, which the parse hashes ([`KeyBucket`]);
/// [`Walked::finish`] joins the two.
pub fn status_but_key(db: &Db<'_>) -> Result<Walked, Problem> {
    walk(db, true)
}

/// A walk that may have left bucket `key`'s entries out.
#[derive(Debug)]
pub struct Walked {
    /// Up to and including bucket `key`'s name (all of it when nothing was left out).
    before: Crc,
    /// What came after bucket `key`'s entries, when they were left out.
    after: Option<Crc>,
    total_key: u64,
    revision: i64,
    total_size: u64,
    version: Option<String>,
}

impl Walked {
    /// The status, with bucket `key`'s entries from the parse when they were left out.
    pub fn finish(self, key: Option<&KeyBucket>) -> Status {
        let (crc, total_key, revision) = match (self.after, key) {
            (Some(after), Some(k)) => (
                self.before.then(k.crc).then(after),
                self.total_key + k.entries,
                if k.entries > 0 {
                    k.last_main
                } else {
                    self.revision
                },
            ),
            _ => (self.before, self.total_key, self.revision),
        };
        Status {
            hash: crc.hash,
            revision,
            total_key,
            total_size: self.total_size,
            version: self.version,
        }
    }
}

fn walk(db: &Db<'_>, skip_key: bool) -> Result<Walked, Problem> {
    // `crc` runs from the start until bucket `key`'s entries are left out, then anew.
    let mut crc = Crc::default();
    let mut before = None;
    let mut total_key = 0u64;
    let mut revision = 0i64;
    let mut version = None;
    for top in db.cursor(db.root())? {
        let top = top?;
        let Some(bucket) = db.bucket(db.root(), top.key)? else {
            return Err(Problem::Corrupt(format!(
                "top-level entry `{}` is not a bucket",
                String::from_utf8_lossy(top.key)
            )));
        };
        crc.add(top.key);
        let is_key = top.key == b"key";
        let is_meta = top.key == b"meta";
        if is_key && skip_key {
            before = Some(std::mem::take(&mut crc));
            continue;
        }
        for entry in db.cursor(bucket)? {
            let entry = entry?;
            crc.add(entry.key);
            if !entry.is_bucket() {
                crc.add(entry.value);
            }
            if is_key && let Some(main) = entry.key.first_chunk::<8>() {
                revision = i64::from_be_bytes(*main);
            }
            if is_meta && entry.key == b"storageVersion" {
                version = Some(String::from_utf8_lossy(entry.value).into_owned());
            }
            total_key += 1;
        }
    }
    let (before, after) = match before {
        Some(b) => (b, Some(crc)),
        None => (crc, None),
    };
    let meta = db.meta();
    Ok(Walked {
        before,
        after,
        total_key,
        revision,
        total_size: meta.pgid.saturating_mul(u64::from(meta.page_size)),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::bytes::Bytes;

    /// The walk that leaves bucket `key` to the parse gives etcdctl's status all the same
    /// (`tests/snapshot_etcd.rs` also checks both against etcdctl on a real snapshot).
    #[test]
    fn the_parse_s_key_bucket_joined_to_the_other_buckets_is_the_whole_walk() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/auger/boltdb/db");
        let body = Bytes::from(std::fs::read(path).unwrap());
        let db = Db::open(&body).unwrap();
        let whole = status(&db).unwrap();
        let view = super::super::mvcc::read(&db, &body, true, &|_| ()).unwrap();
        let key = view.key_bucket.unwrap();
        assert!(key.entries > 0 && key.crc.len > 0);
        assert_eq!(status_but_key(&db).unwrap().finish(Some(&key)), whole);
        // Without the parse's part the hash is another one: the join is what makes it.
        assert_ne!(status_but_key(&db).unwrap().finish(None).hash, whole.hash);
        assert_eq!(walk(&db, false).unwrap().finish(Some(&key)), whole);
    }
}
