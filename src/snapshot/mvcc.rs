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

/// A live key as a client would get it from a range request. Key and value are
/// slices of the snapshot's file buffer (`Bytes` derefs to `[u8]`): copying a
/// million values out of it doubled `inspect`'s memory for nothing.
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

/// One entry of bucket `key`.
#[derive(Debug, Clone)]
pub struct Revision {
    pub rev: RevKey,
    pub kv: StoredKv,
}

/// What [`read`] finds.
#[derive(Debug)]
pub struct View {
    pub kvs: Vec<KeyValue>,
    pub revision: i64,
    pub compact_revision: Option<i64>,
}

/// Reads buckets `key` and `meta` of `db`, whose bytes are `data`.
pub fn read(db: &Db<'_>, data: &Bytes) -> Result<View, Problem> {
    let bucket = db
        .bucket(db.root(), b"key")?
        .ok_or_else(|| Problem::MissingBucket("key".into()))?;
    let mut revisions = Vec::new();
    let mut revision = 0;
    for entry in db.cursor(bucket)? {
        let entry = entry?;
        if entry.is_bucket() {
            return Err(Problem::Corrupt("nested bucket inside bucket `key`".into()));
        }
        let rev = RevKey::parse(entry.key)
            .ok_or_else(|| Problem::BadRevisionKey(hex::encode(entry.key)))?;
        let kv =
            StoredKv::decode(subslice(data, entry.value)?).map_err(|e| Problem::BadKeyValue {
                revision: rev.to_string(),
                reason: e.to_string(),
            })?;
        revision = revision.max(rev.main);
        revisions.push(Revision { rev, kv });
    }
    let compact_revision = compaction(db)?;
    Ok(View {
        kvs: latest(revisions),
        revision: revision.max(compact_revision.unwrap_or(0)),
        compact_revision,
    })
}

/// `entry` as a zero-copy `Bytes` of `data` (it always is a subslice of it).
fn subslice(data: &Bytes, entry: &[u8]) -> Result<Bytes, Problem> {
    let start = (entry.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
    let end = start.checked_add(entry.len()).filter(|&e| e <= data.len());
    match end {
        Some(end) if start <= end => Ok(data.slice(start..end)),
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

/// The latest live view: per key, the newest revision unless it is a tombstone,
/// sorted by key. Order of the input does not matter.
///
/// Keys share long prefixes (`/registry/pods/...`), so a plain sort spends its time in
/// `memcmp`. Each revision gets an abbreviated key instead: the 16 bytes after the
/// prefix common to all keys, as a big-endian `u128` (zero padded, so its order agrees
/// with the byte order of the keys); only ties compare the full keys.
pub fn latest(revisions: Vec<Revision>) -> Vec<KeyValue> {
    let first = revisions
        .first()
        .map(|r| r.kv.key.clone())
        .unwrap_or_default();
    let lcp = revisions.iter().fold(first.len(), |n, r| {
        first
            .iter()
            .take(n)
            .zip(r.kv.key.iter())
            .take_while(|(a, b)| a == b)
            .count()
    });
    let full = |i: usize| revisions.get(i).map(|r| (&r.kv.key, r.rev));
    let mut order: Vec<(u128, usize)> = revisions
        .iter()
        .enumerate()
        .map(|(i, r)| (abbreviate(&r.kv.key, lcp), i))
        .collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| full(a.1).cmp(&full(b.1))));
    let same_key = |a: &(u128, usize), b: &(u128, usize)| {
        a.0 == b.0 && full(a.1).map(|f| f.0) == full(b.1).map(|f| f.0)
    };
    order
        .chunk_by(same_key)
        .filter_map(|group| revisions.get(group.last()?.1))
        .filter(|r| !r.rev.tombstone)
        .map(|r| KeyValue {
            key: r.kv.key.clone(),
            value: r.kv.value.clone(),
            create_revision: r.kv.create_revision,
            mod_revision: r.kv.mod_revision,
            version: r.kv.version,
            lease: r.kv.lease,
        })
        .collect()
}

fn abbreviate(key: &[u8], skip: usize) -> u128 {
    let mut buf = [0u8; 16];
    for (d, s) in buf.iter_mut().zip(key.iter().skip(skip)) {
        *d = *s;
    }
    u128::from_be_bytes(buf)
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

    fn put(main: i64, key: &str, value: &str) -> Revision {
        let kv = StoredKv {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            mod_revision: main,
            ..Default::default()
        };
        Revision {
            rev: RevKey {
                main,
                sub: 0,
                tombstone: false,
            },
            kv,
        }
    }

    fn del(main: i64, key: &str) -> Revision {
        let kv = StoredKv {
            key: Bytes::copy_from_slice(key.as_bytes()),
            ..Default::default()
        };
        Revision {
            rev: RevKey {
                main,
                sub: 0,
                tombstone: true,
            },
            kv,
        }
    }

    #[test]
    fn latest_keeps_newest_and_drops_tombstones() {
        let revs = vec![
            put(2, "b", "b1"),
            put(3, "a", "a1"),
            put(4, "b", "b2"),
            del(5, "a"),
            put(6, "c", "c1"),
            del(7, "c"),
            put(8, "c", "c2"),
            put(9, "", "empty key"),
        ];
        let mut shuffled = revs.clone();
        shuffled.reverse();
        for input in [revs, shuffled] {
            let got: Vec<_> = latest(input)
                .into_iter()
                .map(|kv| {
                    (
                        String::from_utf8(kv.key.to_vec()).unwrap(),
                        String::from_utf8(kv.value.to_vec()).unwrap(),
                        kv.mod_revision,
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    ("".into(), "empty key".into(), 9),
                    ("b".into(), "b2".into(), 4),
                    ("c".into(), "c2".into(), 8)
                ]
            );
        }
    }

    #[test]
    fn abbreviated_sort_agrees_with_byte_order() {
        let keys = [
            "/p/x",
            "/p/x\0",
            "/p/",
            "/p/x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0a",
            "/p/y",
            "/p/x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ];
        let revs = keys
            .iter()
            .enumerate()
            .map(|(i, k)| put(i as i64 + 1, k, "v"))
            .collect();
        let got: Vec<Vec<u8>> = latest(revs).into_iter().map(|kv| kv.key.to_vec()).collect();
        let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        want.sort();
        assert_eq!(got, want);
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
