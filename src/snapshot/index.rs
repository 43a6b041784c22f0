//! The live keys of a snapshot as a compact index into the file: per key, where its
//! `mvccpb.KeyValue` lies, and nothing decoded until asked.
//!
//! Why not a `Vec` of decoded key-values: everything beside the file is what `inspect`
//! and `recover` cost in memory. Decoded values with their `Bytes` handles, the revision
//! list they came from and the sort's own index took about 300 bytes per key (a 300 MB
//! snapshot of 100k keys needed 1.12× its size). Now a [`Slot`] of 48 bytes and a copy
//! of the key are all, and a key-value is decoded again (a few hundred nanoseconds) when
//! it is looked at.
//!
//! Why the keys are copied: the sort and the lookups must not need the file's pages.
//! A mapped file's pages are given back as the parse goes ([`crate::fsutil::mapped`]), so
//! that what the process holds is this index, not the file; a sort that read its keys in
//! the file brought every page back (and was 3–9 % slower: a key read in the file is a
//! cache miss, one in the copy mostly not).

use std::ops::Range;

use prost::Message;
use prost::bytes::Bytes;

use super::Problem;
use super::mvcc::{KeyValue, StoredKv};

/// One entry of bucket `key`: 48 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The sort's current radix digit; once sorted, [`NEW_KEY`] or [`SAME_KEY`].
    scratch: u128,
    /// Offset of the entry's `mvccpb.KeyValue` in the file.
    at: u64,
    /// Offset of its key in [`Keys`].
    key_at: u64,
    /// Its length, and [`TOMBSTONE`] for a delete (bbolt's values are < 2 GiB).
    len: u32,
    /// The entry's place in the bucket, which is its revision order.
    seq: u32,
    key_len: u32,
    value_len: u32,
}

const TOMBSTONE: u32 = 1 << 31;
/// Once sorted: the first entry of its key, or another entry of the key before it.
const NEW_KEY: u128 = 0;
const SAME_KEY: u128 = 1;

/// The keys of every entry, one after another in bucket order.
#[derive(Debug, Clone, Default)]
struct Keys(Vec<u8>);

impl Keys {
    fn get(&self, s: &Slot) -> &[u8] {
        usize::try_from(s.key_at)
            .ok()
            .and_then(|start| self.0.get(start..start.checked_add(s.key_len as usize)?))
            .unwrap_or_default()
    }

    /// The 16 bytes of `s`'s key from `depth`, zero padded, as a big-endian number: the
    /// order of these agrees with the order of the bytes.
    fn digit(&self, s: &Slot, depth: usize) -> u128 {
        digit(self.get(s), depth)
    }
}

fn digit(key: &[u8], depth: usize) -> u128 {
    let mut buf = [0u8; 16];
    if let Some(rest) = key.get(depth..) {
        for (d, b) in buf.iter_mut().zip(rest) {
            *d = *b;
        }
    }
    u128::from_be_bytes(buf)
}

/// Bucket `key` as it is walked, over the file its entries lie in.
#[derive(Debug, Default)]
pub struct Builder {
    body: Bytes,
    keys: Keys,
    slots: Vec<Slot>,
    /// The length of the prefix every key so far shares with the first: the sort
    /// starts after it (`/registry/` on every Kubernetes cluster).
    shared: usize,
    /// The entries before this one took their first digit at a `shared` since shortened.
    settled: usize,
}

impl Builder {
    pub fn new(body: Bytes) -> Self {
        Builder {
            body,
            ..Builder::default()
        }
    }

    /// Adds the next entry in bucket order: the place of its record in the file and
    /// the record as prost decoded it from there (its `Bytes` slice the file).
    pub fn push(
        &mut self,
        at: Range<usize>,
        kv: &StoredKv,
        tombstone: bool,
    ) -> Result<(), Problem> {
        let seq = u32::try_from(self.slots.len())
            .map_err(|_| Problem::Corrupt("more than 2^32 entries in bucket `key`".into()))?;
        let len = u32::try_from(at.len())
            .ok()
            .filter(|l| l & TOMBSTONE == 0)
            .ok_or_else(|| Problem::Corrupt("a value of 2 GiB or more in bucket `key`".into()))?;
        let (key, at) = (&kv.key, at.start as u64);
        // Both are shorter than the record.
        let (key_len, value_len) = (key.len() as u32, kv.value.len() as u32);
        let key_at = self.keys.0.len() as u64;
        let shared = match self.slots.first() {
            None => key.len(),
            Some(first) => {
                let first = self.keys.get(first);
                let same = first.iter().zip(key.iter()).take_while(|(a, b)| a == b);
                same.count().min(self.shared)
            }
        };
        if shared < self.shared {
            self.settled = self.slots.len();
        }
        self.shared = shared;
        self.keys.0.extend_from_slice(key);
        self.slots.push(Slot {
            // The first round's digit, while the key is in the cache.
            scratch: digit(key, shared),
            at,
            key_at,
            len: if tombstone { len | TOMBSTONE } else { len },
            seq,
            key_len,
            value_len,
        });
        Ok(())
    }

    /// The live view: per key, the last entry in bucket order unless it is a tombstone,
    /// sorted by key. The caller has checked that bucket order is revision order.
    pub fn finish(self) -> Index {
        let Builder {
            body,
            keys,
            mut slots,
            shared,
            settled,
        } = self;
        for s in slots.iter_mut().take(settled) {
            s.scratch = keys.digit(s, shared);
        }
        sort_by_key(&mut slots, shared, |s, depth| keys.digit(s, depth));
        // Each run of one key ends with its newest entry; it alone is kept, in place.
        let mut live = 0;
        let mut i = 0;
        while let Some(run) = slots.get(i..) {
            let n = 1 + run
                .iter()
                .skip(1)
                .take_while(|s| s.scratch == SAME_KEY)
                .count();
            i += n;
            let Some(&newest) = slots.get(i - 1) else {
                break;
            };
            if newest.len & TOMBSTONE != 0 {
                continue;
            }
            if let Some(slot) = slots.get_mut(live) {
                *slot = newest;
            }
            live += 1;
        }
        slots.truncate(live);
        slots.shrink_to_fit();
        Index { body, keys, slots }
    }
}

/// The live keys of a snapshot, sorted: lookups are binary searches over the slots.
#[derive(Debug, Clone, Default)]
pub struct Index {
    body: Bytes,
    keys: Keys,
    slots: Vec<Slot>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The key at position `i` and the length of its value, without decoding it.
    pub fn sizes(&self, i: usize) -> Option<(&[u8], u64)> {
        let s = self.slots.get(i)?;
        Some((self.keys.get(s), u64::from(s.value_len)))
    }

    /// The position of `key`, if it is live.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.slots
            .binary_search_by(|s| self.keys.get(s).cmp(key))
            .ok()
    }

    /// The positions of the live keys starting with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> Range<usize> {
        let start = self.slots.partition_point(|s| self.keys.get(s) < prefix);
        let rest = self.slots.get(start..).unwrap_or_default();
        start..start + rest.partition_point(|s| self.keys.get(s).starts_with(prefix))
    }

    /// The key-value at position `i`, decoded from the file again. It decoded when the
    /// index was built, so a failure here means the file changed under its mapping.
    pub fn get(&self, i: usize) -> Option<Result<KeyValue, Problem>> {
        let s = self.slots.get(i)?;
        let key = self.keys.get(s);
        let decoded = || {
            let start = usize::try_from(s.at).ok()?;
            let end = start.checked_add((s.len & !TOMBSTONE) as usize)?;
            let body = &self.body;
            let kv =
                StoredKv::decode(body.get(start..end).map(|_| body.slice(start..end))?).ok()?;
            (*kv.key == *key).then_some(KeyValue {
                key: kv.key,
                value: kv.value,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                lease: kv.lease,
            })
        };
        Some(decoded().ok_or_else(|| {
            Problem::Corrupt(format!(
                "the value of key {:?} no longer decodes: the file changed while it was read",
                String::from_utf8_lossy(key)
            ))
        }))
    }
}

/// Sorts `slots` by `(key, seq)`, the keys compared as bytes, every key sharing its
/// first `shared` bytes; each slot's `scratch` holds its key's digit at `shared`, and
/// ends as [`NEW_KEY`] or [`SAME_KEY`]. Keys share long prefixes
/// (`/registry/configmaps/<namespace>/...`), so a plain sort spends most of its time in
/// `memcmp` over the same bytes again and again (half of `recover`'s time on 100k keys,
/// by `perf`), and each comparison reads two keys scattered through memory. This is an
/// MSD radix sort whose digits are 16 bytes (`digit(slot, depth)`): each round reads a
/// key once, sorts a run by its digits, and the runs still tied go to the next 16
/// bytes. A tied run whose keys all end in this window holds keys equal but for zeros at
/// their ends, so their lengths order them (the shorter is a prefix of the longer), and
/// equal lengths are the same key at several revisions. The work list is a heap `Vec`,
/// not recursion: a hostile snapshot's megabyte key must not overflow the stack.
fn sort_by_key(slots: &mut [Slot], shared: usize, digit: impl Fn(&Slot, usize) -> u128) {
    let mut work = vec![(0, slots.len(), shared)];
    while let Some((start, end, depth)) = work.pop() {
        let Some(run) = slots.get_mut(start..end) else {
            continue;
        };
        if depth != shared {
            for s in run.iter_mut() {
                s.scratch = digit(s, depth);
            }
        }
        run.sort_unstable_by_key(|s| s.scratch);
        let mut at = start;
        for tied in run.chunk_by_mut(|a, b| a.scratch == b.scratch) {
            let len = tied.len();
            if len > 1 && tied.iter().any(|s| s.key_len as usize > depth + 16) {
                work.push((at, at + len, depth + 16));
            } else {
                tied.sort_unstable_by_key(|s| (s.key_len, s.seq));
                let mut previous = None;
                for s in tied.iter_mut() {
                    s.scratch = if previous == Some(s.key_len) {
                        SAME_KEY
                    } else {
                        NEW_KEY
                    };
                    previous = Some(s.key_len);
                }
            }
            at += len;
        }
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
