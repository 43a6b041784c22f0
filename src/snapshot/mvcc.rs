//! etcd's MVCC layout inside bbolt, turned into what a client would see: the latest
//! live value of every key at the store revision.
//!
//! Bucket `key` maps revision keys to `mvccpb.KeyValue` protobufs, one entry per put
//! or delete of any key, in revision order:
//! - a revision key is 8-byte big-endian main revision, `_`, 8-byte big-endian sub
//!   revision (17 bytes; `revBytesLen` in
//!   <https://github.com/etcd-io/etcd/blob/v3.5.1/server/mvcc/revision.go>);
//! - a delete is stored as an 18-byte key ending in `t` (`markedRevBytesLen`,
//!   `markTombstone` in <https://github.com/etcd-io/etcd/blob/v3.5.1/server/mvcc/kvstore.go>)
//!   whose value holds only the user key;
//! - the value is `mvccpb.KeyValue`
//!   (<https://github.com/etcd-io/etcd/blob/v3.5.1/api/mvccpb/kv.proto>).
//!
//! Compaction removes old revisions (and tombstones at or below it) but always keeps
//! the newest revision of a live key, so "newest revision per key, unless it is a
//! tombstone" is the live view with or without compaction. Bucket `meta` holds
//! `scheduledCompactRev`/`finishedCompactRev`; etcd's `restore()` (kvstore.go) raises
//! the store revision to the compaction revision when compaction removed the newest
//! entries, and so do we.

use prost::Message;
use prost::bytes::Bytes;

use super::Problem;
use super::bbolt::Db;
use super::index::{Builder, Index};
use super::status::KeyBucket;

/// A live key as a client would get it from a range request. Key and value are
/// slices of the snapshot's buffers (`Bytes` derefs to `[u8]`), made when it is looked
/// up ([`super::index::Index::get`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Bytes,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// `mvccpb.KeyValue` as stored; `Bytes` fields slice the file buffer without copying.
#[derive(Clone, PartialEq, Message)]
pub struct StoredKv {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(bytes = "bytes", tag = "5")]
    pub value: Bytes,
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// A parsed revision key of bucket `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RevKey {
    pub main: i64,
    pub sub: i64,
    pub tombstone: bool,
}

impl RevKey {
    /// Parses a 17-byte revision key, or an 18-byte one ending in the tombstone mark.
    pub fn parse(b: &[u8]) -> Option<RevKey> {
        let (rev, tombstone) = match b {
            [rev @ .., b't'] if b.len() == 18 => (rev, true),
            _ if b.len() == 17 => (b, false),
            _ => return None,
        };
        let (main, rest) = rev.split_first_chunk::<8>()?;
        let (sep, sub) = rest.split_first()?;
        let sub: [u8; 8] = sub.try_into().ok()?;
        (*sep == b'_').then_some(RevKey {
            main: i64::from_be_bytes(*main),
            sub: i64::from_be_bytes(sub),
            tombstone,
        })
    }
}

impl std::fmt::Display for RevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}_{}{}",
            self.main,
            self.sub,
            if self.tombstone { " (tombstone)" } else { "" }
        )
    }
}

/// What [`read`] finds.
#[derive(Debug)]
pub struct View {
    pub index: Index,
    pub revision: i64,
    pub compact_revision: Option<i64>,
    /// Bucket `key` hashed as etcdctl's status does, when asked for.
    pub key_bucket: Option<KeyBucket>,
}

/// Reads buckets `key` and `meta` of `db`, whose bytes are `data`.
/// With `status`, also hashes bucket `key` for [`super::status`] on the way. Tells
/// `read_through` of each record read (a mapping gives its pages back as they are read:
/// `fsutil::mapped`).
///
/// The newest entry of a key is the last one in bucket order, as etcd's own restore
/// (`restoreChunk` in kvstore.go) takes it; a bucket out of revision order is refused,
/// as etcd's index refuses ("put with an unexpected smaller revision", key_index.go).
pub fn read(
    db: &Db<'_>,
    data: &Bytes,
    status: bool,
    read_through: &dyn Fn(usize),
) -> Result<View, Problem> {
    let bucket = db
        .bucket(db.root(), b"key")?
        .ok_or_else(|| Problem::MissingBucket("key".into()))?;
    let mut index = Builder::new(data.clone());
    let mut last: Option<RevKey> = None;
    let mut key_bucket = status.then(KeyBucket::default);
    for entry in db.cursor(bucket)? {
        let entry = entry?;
        if entry.is_bucket() {
            return Err(Problem::Corrupt("nested bucket inside bucket `key`".into()));
        }
        let rev = RevKey::parse(entry.key)
            .filter(|r| r.main >= 0 && r.sub >= 0)
            .ok_or_else(|| Problem::BadRevisionKey(hex::encode(entry.key)))?;
        if let Some(prev) = last.filter(|p| (p.main, p.sub) >= (rev.main, rev.sub)) {
            return Err(Problem::Corrupt(format!(
                "bucket `key`: revision {rev} after {prev}, out of order"
            )));
        }
        let at = place(data, entry.value)?;
        // Decoded from a slice of `data`: from a `&[u8]`, prost copies each field.
        let kv = StoredKv::decode(data.slice(at.clone())).map_err(|e| Problem::BadKeyValue {
            revision: rev.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(k) = key_bucket.as_mut() {
            k.add(entry.key, entry.value, rev.main);
        }
        read_through(at.len());
        index.push(at, &kv, rev.tombstone)?;
        last = Some(rev);
    }
    let revision = last.map_or(0, |r| r.main);
    let compact_revision = compaction(db)?;
    Ok(View {
        index: index.finish(),
        revision: revision.max(compact_revision.unwrap_or(0)),
        compact_revision,
        key_bucket,
    })
}

/// Where `entry` (always a subslice of `data`, of at most 4 GiB as bbolt's are) lies in it.
fn place(data: &[u8], entry: &[u8]) -> Result<std::ops::Range<usize>, Problem> {
    let start = (entry.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
    let end = start.checked_add(entry.len()).filter(|&e| e <= data.len());
    match (end, u32::try_from(entry.len())) {
        (Some(end), Ok(_)) => Ok(start..end),
        _ => Err(Problem::Corrupt("value outside the file".into())),
    }
}

/// The compaction revision from bucket `meta`: the later of finished and scheduled
/// (a scheduled one is finished by etcd when it starts, so it is the floor either way).
fn compaction(db: &Db<'_>) -> Result<Option<i64>, Problem> {
    let Some(meta) = db.bucket(db.root(), b"meta")? else {
        return Ok(None);
    };
    let mut found = None;
    for entry in db.cursor(meta)? {
        let entry = entry?;
        if entry.key == b"finishedCompactRev" || entry.key == b"scheduledCompactRev" {
            let rev = RevKey::parse(entry.value).ok_or_else(|| {
                Problem::Corrupt(format!(
                    "bucket `meta`: bad {} {}",
                    String::from_utf8_lossy(entry.key),
                    hex::encode(entry.value)
                ))
            })?;
            found = found.max(Some(rev.main));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev_key(main: i64, sub: i64, tomb: bool) -> Vec<u8> {
        let mut k = main.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&sub.to_be_bytes());
        if tomb {
            k.push(b't');
        }
        k
    }

    #[test]
    fn parses_revision_keys() {
        let r = RevKey::parse(&rev_key(5, 1, false)).unwrap();
        assert_eq!((r.main, r.sub, r.tombstone), (5, 1, false));
        let t = RevKey::parse(&rev_key(258, 0, true)).unwrap();
        assert_eq!((t.main, t.sub, t.tombstone), (258, 0, true));
        let mut bad_sep = rev_key(1, 0, false);
        bad_sep[8] = b'-';
        let mut bad_mark = rev_key(1, 0, true);
        bad_mark[17] = b'x';
        for bad in [
            &b""[..],
            b"compact_rev_key",
            &bad_sep,
            &bad_mark,
            &rev_key(1, 0, false)[..16],
        ] {
            assert_eq!(RevKey::parse(bad), None, "{bad:?}");
        }
    }

    /// etcd's own restore takes the last entry of a key in bucket order as its newest,
    /// and its index refuses a revision older than one it has: so must the reader.
    #[test]
    fn a_bucket_out_of_revision_order_is_refused() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/auger/boltdb/db");
        let file = std::fs::read(path).unwrap();
        let (first, second) = {
            let db = Db::open(&file).unwrap();
            let bucket = db.bucket(db.root(), b"key").unwrap().unwrap();
            let mut keys = db.cursor(bucket).unwrap().map(|e| {
                let e = e.unwrap();
                let at = e.key.as_ptr() as usize - file.as_ptr() as usize;
                (at, e.key.len())
            });
            (keys.next().unwrap(), keys.next().unwrap())
        };
        assert_eq!((first.1, second.1), (17, 17), "two puts side by side");
        let ok = Bytes::from(file.clone());
        assert!(read(&Db::open(&ok).unwrap(), &ok, false, &|_| ()).is_ok());
        let mut swapped = file.clone();
        let (a, b) = (
            file[first.0..][..17].to_vec(),
            file[second.0..][..17].to_vec(),
        );
        swapped[first.0..][..17].copy_from_slice(&b);
        swapped[second.0..][..17].copy_from_slice(&a);
        let swapped = Bytes::from(swapped);
        let err = read(&Db::open(&swapped).unwrap(), &swapped, false, &|_| ()).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn decodes_the_fixture_item() {
        // A raw leaf value from the auger fixture (page 2, item 0).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/auger/boltdb/page2item0.bin"
        );
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        let kv = StoredKv::decode(Bytes::from(bytes)).unwrap();
        assert!(
            kv.key.starts_with(b"/registry/") || &kv.key[..] == b"compact_rev_key",
            "{kv:?}"
        );
    }
}
