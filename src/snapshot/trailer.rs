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

use sha2::{Digest, Sha256};

use super::{Integrity, Problem};

/// Length of the trailer: one sha256 digest.
pub const TRAILER_LEN: usize = 32;

/// True when `len` has the shape of "pages + sha256".
pub fn has_trailer(len: usize) -> bool {
    len >= TRAILER_LEN && len % 512 == TRAILER_LEN
}

/// Checks the trailer (unless `skip`) and strips it off `bytes`.
///
/// Without a trailer the file is accepted only with `skip` ([`Problem::MissingTrailer`]
/// otherwise); the caller decides whether a format error should be reported first.
pub fn check(bytes: &mut Vec<u8>, skip: bool) -> Result<Integrity, Problem> {
    if !has_trailer(bytes.len()) {
        return if skip {
            Ok(Integrity::NoTrailerSkipped)
        } else {
            Err(Problem::MissingTrailer)
        };
    }
    let body_len = bytes.len() - TRAILER_LEN;
    let integrity = if skip {
        Integrity::TrailerNotChecked
    } else {
        let (body, expected) = bytes.split_at(body_len);
        let actual = Sha256::digest(body);
        if actual.as_slice() != expected {
            return Err(Problem::HashMismatch {
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            });
        }
        Integrity::Verified
    };
    bytes.truncate(body_len);
    Ok(integrity)
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
    fn verifies_and_strips() {
        let mut v = with_trailer(&[7u8; 1024]);
        assert_eq!(check(&mut v, false), Ok(Integrity::Verified));
        assert_eq!(v.len(), 1024);
    }

    #[test]
    fn mismatch_is_an_error() {
        let mut v = with_trailer(&[7u8; 1024]);
        v[3] ^= 1;
        assert!(matches!(
            check(&mut v, false),
            Err(Problem::HashMismatch { .. })
        ));
        // Skipping does not verify, but still strips.
        assert_eq!(check(&mut v, true), Ok(Integrity::TrailerNotChecked));
        assert_eq!(v.len(), 1024);
    }

    #[test]
    fn raw_db_needs_skip() {
        let mut v = vec![0u8; 4096];
        assert_eq!(check(&mut v, false), Err(Problem::MissingTrailer));
        assert_eq!(check(&mut v, true), Ok(Integrity::NoTrailerSkipped));
        assert_eq!(v.len(), 4096);
        assert!(!has_trailer(0) && !has_trailer(31) && has_trailer(32) && has_trailer(544));
    }
}
