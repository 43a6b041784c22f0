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
//! Hashing a large file costs about as much as parsing it, so `Snapshot` runs
//! [`verify`] on a second thread while it parses.

use sha2::{Digest, Sha256};

use super::Problem;

/// Length of the trailer: one sha256 digest.
pub const TRAILER_LEN: usize = 32;

/// True when `len` has the shape of "pages + sha256".
pub fn has_trailer(len: usize) -> bool {
    len >= TRAILER_LEN && len % 512 == TRAILER_LEN
}

/// Checks that the last 32 bytes of `file` are the sha256 of the rest.
pub fn verify(file: &[u8]) -> Result<(), Problem> {
    if !has_trailer(file.len()) {
        return Err(Problem::MissingTrailer);
    }
    let (body, expected) = file.split_at(file.len() - TRAILER_LEN);
    let actual = Sha256::digest(body);
    if actual.as_slice() != expected {
        return Err(Problem::HashMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(actual),
        });
    }
    Ok(())
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
        assert_eq!(verify(&with_trailer(&[7u8; 1024])), Ok(()));
    }

    #[test]
    fn mismatch_is_an_error() {
        let mut v = with_trailer(&[7u8; 1024]);
        v[3] ^= 1;
        assert!(matches!(verify(&v), Err(Problem::HashMismatch { .. })));
    }

    #[test]
    fn detected_by_length() {
        assert_eq!(verify(&[0u8; 4096]), Err(Problem::MissingTrailer));
        assert!(!has_trailer(0) && !has_trailer(31) && has_trailer(32) && has_trailer(544));
        assert!(!has_trailer(4096) && has_trailer(4096 + 32));
    }
}
