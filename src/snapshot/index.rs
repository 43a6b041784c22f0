//! The live keys of a snapshot as a compact index into the file: per key, where its
//! `mvccpb.KeyValue` lies and where its key was copied, and nothing decoded until asked.
//!
//! Why not a `Vec` of decoded key-values: with the file mapped, everything beside it is
//! what `inspect` and `recover` cost in memory. Decoded values with their `Bytes` handles,
//! the revision list they came from and the sort's own index took about 300 bytes per
//! key (a 300 MB snapshot of 100k keys needed 1.12× its size). A [`Slot`] is 32 bytes,
//! the sort works in the slots themselves, and a key-value is decoded again (a few
//! hundred nanoseconds) when it is looked at.

use prost::Message;
use prost::bytes::Bytes;

use super::Problem;
use super::mvcc::{KeyValue, StoredKv};

/// One entry of bucket `key`: 32 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The sort's current radix digit; once sorted, the key's place in the copied keys
    /// and the length of its value (`start << 64 | key length << 32 | value length`).
    scratch: u128,
    /// Offset of the entry's value (its `mvccpb.KeyValue`) in the file; [`TOMBSTONE`]
    /// for a delete, whose value is not needed.
    at: u64,
    len: u32,
    /// The entry's place in the bucket, which is its revision order.
    seq: u32,
}

const TOMBSTONE: u64 = u64::MAX;

/// Bucket `key` as it is walked: each entry's key copied side by side (4 MB for 100k
/// keys; scattered through a 300 MB file, each look at a key during the sort was a cache
/// and TLB miss) and its slot.
#[derive(Debug, Default)]
pub struct Builder {
    keys: Vec<u8>,
    /// Where each entry's key starts in `keys`, by `seq`, and one past the last.
    starts: Vec<u64>,
    /// The length of each entry's value, by `seq`: `inspect` counts them without
    /// touching the file again.
    value_lens: Vec<u32>,
    slots: Vec<Slot>,
}

/// Where one entry's `mvccpb.KeyValue` lies in the file, and the length of the value in it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub at: u64,
    pub len: u32,
    pub value_len: u32,
}

impl Builder {
    /// Adds the next entry in bucket order: its user key, and where it is (`None` for a
    /// tombstone).
    pub fn push(&mut self, key: &[u8], entry: Option<Entry>) -> Result<(), Problem> {
        let seq = u32::try_from(self.slots.len())
            .map_err(|_| Problem::Corrupt("more than 2^32 entries in bucket `key`".into()))?;
        if self.starts.is_empty() {
            self.starts.push(0);
        }
        self.keys.extend_from_slice(key);
        self.starts.push(self.keys.len() as u64);
        let (at, len, value_len) = entry.map_or((TOMBSTONE, 0, 0), |e| (e.at, e.len, e.value_len));
        self.value_lens.push(value_len);
        self.slots.push(Slot {
            scratch: 0,
            at,
            len,
            seq,
        });
        Ok(())
    }

    /// The live view: per key, the last entry in bucket order unless it is a tombstone,
    /// sorted by key. The caller has checked that bucket order is revision order.
    pub fn finish(self) -> Index {
        let Builder {
            keys,
            starts,
            value_lens,
            mut slots,
        } = self;
        let span = |seq: u32| {
            let i = seq as usize;
            Some(*starts.get(i)? as usize..*starts.get(i + 1)? as usize)
        };
        let key = |s: &Slot| span(s.seq).and_then(|r| keys.get(r)).unwrap_or_default();
        sort_by_key(&mut slots, key);
        // Each run of one key ends with its newest entry; it alone is kept, in place.
        let mut live = 0;
        let mut i = 0;
        while let Some(run) = slots.get(i..) {
            let Some(first) = run.first() else { break };
            let n = run.iter().take_while(|s| key(s) == key(first)).count();
            i += n.max(1);
            let Some(&newest) = slots.get(i - 1) else {
                break;
            };
            if newest.at == TOMBSTONE {
                continue;
            }
            let r = span(newest.seq).unwrap_or_default();
            let value_len = value_lens.get(newest.seq as usize).copied().unwrap_or(0);
            if let Some(slot) = slots.get_mut(live) {
                *slot = Slot {
                    scratch: (r.start as u128) << 64 | (r.len() as u128) << 32 | value_len as u128,
                    ..newest
                };
            }
            live += 1;
        }
        slots.truncate(live);
        slots.shrink_to_fit();
        Index {
            keys: Bytes::from(keys),
            slots,
        }
    }
}

/// The live keys of a snapshot, sorted: lookups are binary searches over the slots.
#[derive(Debug, Clone, Default)]
pub struct Index {
    keys: Bytes,
    slots: Vec<Slot>,
}

impl Index {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The span of `s`'s key in `keys`, once sorted.
    fn span(&self, s: &Slot) -> Option<std::ops::Range<usize>> {
        let start = (s.scratch >> 64) as usize;
        let end = start.checked_add((s.scratch >> 32) as u32 as usize)?;
        (end <= self.keys.len()).then_some(start..end)
    }

    /// The key at position `i` and the length of its value, without decoding it.
    pub fn sizes(&self, i: usize) -> Option<(&[u8], u64)> {
        let s = self.slots.get(i)?;
        Some((self.key(s), u64::from(s.scratch as u32)))
    }

    fn key(&self, s: &Slot) -> &[u8] {
        self.span(s)
            .and_then(|r| self.keys.get(r))
            .unwrap_or_default()
    }

    /// The position of `key`, if it is live.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.slots.binary_search_by(|s| self.key(s).cmp(key)).ok()
    }

    /// The positions of the live keys starting with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> std::ops::Range<usize> {
        let start = self.slots.partition_point(|s| self.key(s) < prefix);
        let rest = self.slots.get(start..).unwrap_or_default();
        start..start + rest.partition_point(|s| self.key(s).starts_with(prefix))
    }

    /// The key-value at position `i`, decoded from `body` (the file it was built from).
    /// It decoded when the index was built, so a failure here means the file changed
    /// under a mapping.
    pub fn get(&self, i: usize, body: &Bytes) -> Option<Result<KeyValue, Problem>> {
        let s = self.slots.get(i)?;
        let decoded = || {
            let key = self.keys.slice(self.span(s)?);
            let start = usize::try_from(s.at).ok()?;
            let end = start
                .checked_add(s.len as usize)
                .filter(|&e| e <= body.len())?;
            let kv = StoredKv::decode(body.slice(start..end)).ok()?;
            Some(KeyValue {
                key,
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
                String::from_utf8_lossy(self.key(s))
            ))
        }))
    }
}

/// Sorts `slots` by `(key, seq)`, the keys compared as bytes. Keys share long prefixes
/// (`/registry/configmaps/<namespace>/...`), so a plain sort spends most of its time in
/// `memcmp` over the same bytes again and again (half of `recover`'s time on 100k keys,
/// by `perf`). This is an MSD radix sort whose digits are 16 bytes: each round sorts a
/// run by a big-endian `u128` of the key bytes at `depth` (zero padded, so a key's order
/// agrees with the bytes'), and the runs still tied go to the next 16 bytes; a tied run
/// whose keys all end in this window is finished by comparing them whole (short now,
/// or the same key at several revisions). The work list is a heap `Vec`, not
/// recursion: a hostile snapshot's megabyte key must not overflow the stack.
fn sort_by_key<'a>(slots: &mut [Slot], key: impl Fn(&Slot) -> &'a [u8]) {
    let digit = |s: &Slot, depth: usize| {
        let mut buf = [0u8; 16];
        if let Some(rest) = key(s).get(depth..) {
            for (d, b) in buf.iter_mut().zip(rest) {
                *d = *b;
            }
        }
        u128::from_be_bytes(buf)
    };
    let mut work = vec![(0, slots.len(), 0)];
    while let Some((start, end, depth)) = work.pop() {
        let Some(run) = slots.get_mut(start..end) else {
            continue;
        };
        for s in run.iter_mut() {
            s.scratch = digit(s, depth);
        }
        run.sort_unstable_by_key(|s| s.scratch);
        let mut at = start;
        for tied in run.chunk_by_mut(|a, b| a.scratch == b.scratch) {
            let len = tied.len();
            if len > 1 {
                if tied.iter().all(|s| key(s).len() <= depth + 16) {
                    tied.sort_unstable_by(|a, b| (key(a), a.seq).cmp(&(key(b), b.seq)));
                } else {
                    work.push((at, at + len, depth + 16));
                }
            }
            at += len;
        }
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
