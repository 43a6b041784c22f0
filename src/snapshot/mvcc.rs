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
use super::status::KeyBucket;

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
    /// Bucket `key` hashed as etcdctl's status does, when asked for.
    pub key_bucket: Option<KeyBucket>,
}

/// Reads buckets `key` and `meta` of `db`, whose bytes are `data`.
/// With `status`, also hashes bucket `key` for [`super::status`] on the way.
pub fn read(db: &Db<'_>, data: &Bytes, status: bool) -> Result<View, Problem> {
    let bucket = db
        .bucket(db.root(), b"key")?
        .ok_or_else(|| Problem::MissingBucket("key".into()))?;
    let mut revisions = Vec::new();
    let mut revision = 0;
    let mut key_bucket = status.then(KeyBucket::default);
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
        if let Some(k) = key_bucket.as_mut() {
            k.add(entry.key, entry.value, rev.main);
        }
        revisions.push(Revision { rev, kv });
    }
    let compact_revision = compaction(db)?;
    Ok(View {
        kvs: latest(revisions),
        revision: revision.max(compact_revision.unwrap_or(0)),
        compact_revision,
        key_bucket,
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
/// Keys share long prefixes (`/registry/configmaps/<namespace>/...`), so a plain sort
/// spends most of its time in `memcmp` over the same bytes again and again (half of
/// `recover`'s time on 100k keys, by `perf`). [`sort_by_key`] sorts by 16 bytes of the
/// key at a time instead. The keys are first copied side by side (4 MB for 100k keys):
/// scattered through a 300 MB file, each look at one was a cache and TLB miss, and the
/// sort and every later walk by key (`inspect`'s counts) look at each several times.
pub fn latest(revisions: Vec<Revision>) -> Vec<KeyValue> {
    let mut keys = Vec::with_capacity(revisions.iter().map(|r| r.kv.key.len()).sum());
    let mut starts = Vec::with_capacity(revisions.len() + 1);
    for r in &revisions {
        starts.push(keys.len());
        keys.extend_from_slice(&r.kv.key);
    }
    starts.push(keys.len());
    let keys = Bytes::from(keys);
    let span = |i: usize| Some(*starts.get(i)?..*starts.get(i + 1)?);
    let key = |i: usize| keys.get(span(i)?);
    let mut order: Vec<(u128, usize)> = (0..revisions.len()).map(|i| (0, i)).collect();
    sort_by_key(&mut order, |i| Some((key(i)?, revisions.get(i)?.rev)));
    order
        .chunk_by(|a, b| key(a.1) == key(b.1))
        .filter_map(|group| {
            let i = group.last()?.1;
            let r = revisions.get(i).filter(|r| !r.rev.tombstone)?;
            Some(KeyValue {
                key: keys.slice(span(i)?),
                value: r.kv.value.clone(),
                create_revision: r.kv.create_revision,
                mod_revision: r.kv.mod_revision,
                version: r.kv.version,
                lease: r.kv.lease,
            })
        })
        .collect()
}

/// Sorts `order` (indices in `.1`; `.0` is scratch) by `(key, revision)` as `full`
/// gives them, the keys compared as bytes. An MSD radix sort whose digits are 16
/// bytes: each round sorts a run by a big-endian `u128` of the key bytes at `depth`
/// (zero padded, so a key's order agrees with the bytes'), and the runs still tied go
/// to the next 16 bytes; a tied run whose keys all end in this window is finished by
/// comparing them whole (short now, or the same key at several revisions). The work
/// list is a heap `Vec`, not recursion: a hostile snapshot's megabyte key must not
/// overflow the stack.
fn sort_by_key<'a, R: Ord>(
    order: &mut [(u128, usize)],
    full: impl Fn(usize) -> Option<(&'a [u8], R)>,
) {
    let digit = |i: usize, depth: usize| {
        let mut buf = [0u8; 16];
        if let Some(rest) = full(i).and_then(|(k, _)| k.get(depth..)) {
            for (d, s) in buf.iter_mut().zip(rest) {
                *d = *s;
            }
        }
        u128::from_be_bytes(buf)
    };
    let ends_within = |i: usize, depth: usize| full(i).is_none_or(|(k, _)| k.len() <= depth + 16);
    let mut work = vec![(0, order.len(), 0)];
    while let Some((start, end, depth)) = work.pop() {
        let Some(run) = order.get_mut(start..end) else {
            continue;
        };
        for e in run.iter_mut() {
            e.0 = digit(e.1, depth);
        }
        run.sort_unstable_by_key(|e| e.0);
        let mut at = start;
        for tied in run.chunk_by_mut(|a, b| a.0 == b.0) {
            let len = tied.len();
            if len > 1 {
                if tied.iter().all(|e| ends_within(e.1, depth)) {
                    tied.sort_unstable_by(|a, b| full(a.1).cmp(&full(b.1)));
                } else {
                    work.push((at, at + len, depth + 16));
                }
            }
            at += len;
        }
    }
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

    proptest::proptest! {
        /// Keys from a tiny alphabet with zero bytes, long shared runs and repeats: the
        /// radix sort must agree with a plain sort of `(key, revision)`.
        #[test]
        fn radix_sort_agrees_with_a_plain_sort(
            keys in proptest::collection::vec(
                proptest::collection::vec(proptest::prop_oneof![
                    proptest::strategy::Just(0u8), proptest::strategy::Just(b'a'),
                    proptest::strategy::Just(0xffu8)], 0..40), 0..60),
            pad in 0usize..40,
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter()
                .map(|k| [vec![b'/'; pad], k].concat()).collect();
            let mut order: Vec<(u128, usize)> = (0..keys.len()).map(|i| (0, i)).collect();
            // Revisions descending with the index, so ties on key are ordered by them.
            let full = |i: usize| keys.get(i).map(|k| (&k[..], usize::MAX - i));
            sort_by_key(&mut order, full);
            let mut want: Vec<usize> = (0..keys.len()).collect();
            want.sort_by(|a, b| full(*a).cmp(&full(*b)));
            let got: Vec<usize> = order.iter().map(|e| e.1).collect();
            proptest::prop_assert_eq!(got, want);
        }
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
