//! The sha256 trailer of `etcdctl snapshot save`: the only end-to-end check a snapshot
//! has, so a backup that was cut short or bit-flipped in storage is refused before any
//! object in it is trusted.
//!
//! etcd's server streams the bbolt file followed by the sha256 of everything before it
//! (`Snapshot` in
//! <https://github.com/etcd-io/etcd/blob/v3.5.1/server/etcdserver/api/v3rpc/maintenance.go>).
//! A bbolt file is a whole number of pages (multiples of 512 bytes), so restore detects
//! the trailer by length alone: `hasHash := (off % 512) == sha256.Size` in
//! <https://github.com/etcd-io/etcd/blob/v3.5.1/etcdutl/snapshot/v3_snapshot.go>
//! (3.4: `clientv3/snapshot/v3_snapshot.go`). We do the same. A data-dir
//! `member/snap/db` never has one.
//!
//! Hashing a large file costs about as much as parsing it, so it never waits for the
//! parse: a file is hashed on a second thread chunk by chunk as it is read
//! ([`Streaming`], `read.rs`), a snapshot streamed from etcd as it arrives, and bytes
//! already in memory by [`verify`] on a second thread while they are parsed. The parse
//! that follows a streamed check need not hash again.

use sha2::{Digest, Sha256};

use super::Problem;

/// Length of the trailer: one sha256 digest.
pub const TRAILER_LEN: usize = 32;

/// True when `len` has the shape of "pages + sha256".
pub fn has_trailer(len: usize) -> bool {
    len >= TRAILER_LEN && len % 512 == TRAILER_LEN
}

/// Checks that the last 32 bytes of `file` are the sha256 of the rest; returns the
/// sha256 of the whole file (what `kubeboot.json` and a backup's manifest record), from
/// the same pass.
pub fn verify(file: &[u8]) -> Result<[u8; 32], Problem> {
    verify_reading(file, &|_| ())
}

/// [`verify`], telling `read_through` of each 4 MiB hashed (a mapping gives its pages
/// back as they are read: `fsutil::mapped`).
pub fn verify_reading(file: &[u8], read_through: &dyn Fn(usize)) -> Result<[u8; 32], Problem> {
    if !has_trailer(file.len()) {
        return Err(Problem::MissingTrailer);
    }
    let (body, expected) = file.split_at(file.len() - TRAILER_LEN);
    let mut hasher = Sha256::new();
    for chunk in body.chunks(4 << 20) {
        hasher.update(chunk);
        read_through(chunk.len());
    }
    let mut whole = hasher.clone();
    let actual = hasher.finalize();
    if actual.as_slice() != expected {
        return Err(Problem::HashMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(actual),
        });
    }
    whole.update(expected);
    Ok(whole.finalize().into())
}

/// Proof that the trailer of a file of `len` bytes matched its content, from
/// [`Streaming::finish`]; [`super::Snapshot::open_streamed`] takes it instead of hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub(super) len: usize,
    pub(super) file_sha256: [u8; 32],
}

/// The trailer check and the whole file's sha256, computed chunk by chunk in one pass:
/// the last [`TRAILER_LEN`] bytes seen are held back from the body's hasher until more
/// arrive, since only the end of the stream says which bytes are the trailer.
#[derive(Debug, Clone, Default)]
pub struct Streaming {
    body: Sha256,
    held: Vec<u8>,
    len: usize,
}

/// What [`Streaming::finish`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    /// sha256 of the whole file, trailer included (what a manifest records).
    pub file_sha256: [u8; 32],
    pub trailer: Result<Verified, Problem>,
}

impl Streaming {
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len();
        if chunk.len() >= TRAILER_LEN {
            let (feed, keep) = chunk.split_at(chunk.len() - TRAILER_LEN);
            self.body.update(&self.held);
            self.body.update(feed);
            self.held.clear();
            self.held.extend_from_slice(keep);
        } else {
            self.held.extend_from_slice(chunk);
            let over = self.held.len().saturating_sub(TRAILER_LEN);
            self.body.update(self.held.get(..over).unwrap_or_default());
            self.held.drain(..over);
        }
    }

    pub fn finish(self) -> Streamed {
        let mut whole = self.body.clone();
        whole.update(&self.held);
        let file_sha256 = whole.finalize().into();
        let trailer = if !has_trailer(self.len) {
            Err(Problem::MissingTrailer)
        } else {
            let actual = self.body.finalize();
            if actual.as_slice() == self.held.as_slice() {
                Ok(Verified {
                    len: self.len,
                    file_sha256,
                })
            } else {
                Err(Problem::HashMismatch {
                    expected: hex::encode(&self.held),
                    actual: hex::encode(actual),
                })
            }
        };
        Streamed {
            file_sha256,
            trailer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_trailer(body: &[u8]) -> Vec<u8> {
        let mut v = body.to_vec();
        v.extend_from_slice(&Sha256::digest(body));
        v
    }

    #[test]
    fn verifies() {
        let file = with_trailer(&[7u8; 1024]);
        assert_eq!(verify(&file), Ok(Sha256::digest(&file).into()));
    }

    #[test]
    fn mismatch_is_an_error() {
        let mut v = with_trailer(&[7u8; 1024]);
        v[3] ^= 1;
        assert!(matches!(verify(&v), Err(Problem::HashMismatch { .. })));
    }

    fn streamed(file: &[u8], chunk: usize) -> Streamed {
        let mut s = Streaming::default();
        for c in file.chunks(chunk.max(1)) {
            s.update(c);
        }
        s.finish()
    }

    #[test]
    fn streaming_agrees_with_verify_whatever_the_chunks() {
        let good = with_trailer(&[7u8; 1024]);
        let mut bad = good.clone();
        bad[100] ^= 1;
        let cut = &good[..good.len() - 1];
        for chunk in [1, 5, 31, 32, 33, 512, 4096] {
            for file in [&good[..], &bad[..], cut] {
                let s = streamed(file, chunk);
                assert_eq!(s.file_sha256, <[u8; 32]>::from(Sha256::digest(file)));
                assert_eq!(
                    s.trailer.map(|v| v.file_sha256),
                    verify(file),
                    "chunk {chunk}"
                );
            }
        }
        assert_eq!(streamed(&good, 7).trailer.map(|v| v.len), Ok(good.len()));
    }

    #[test]
    fn detected_by_length() {
        assert_eq!(verify(&[0u8; 4096]), Err(Problem::MissingTrailer));
        assert!(!has_trailer(0) && !has_trailer(31) && has_trailer(32) && has_trailer(544));
        assert!(!has_trailer(4096) && has_trailer(4096 + 32));
    }
}
