//! The `secretbox` provider: payload = 24-byte random nonce + NaCl `secretbox` (XSalsa20 and
//! Poly1305) of the value, i.e. the 16-byte Poly1305 tag first, then the ciphertext. The key is
//! 32 bytes. NaCl's secretbox has no additional data, so the etcd key is not bound in.
//!
//! Upstream: `secretbox.Seal(nonce[:], data, &nonce, &key)` (`golang.org/x/crypto/nacl/secretbox`)
//! in <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/secretbox/secretbox.go>.
//! The `crypto_secretbox` crate writes the same tag-first layout.

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Nonce, XSalsa20Poly1305};

use super::OpenError;

pub(crate) const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// `nonce` + tag + XSalsa20(`plain`).
pub(crate) fn seal(key: &[u8], nonce: &[u8; NONCE_LEN], plain: &[u8]) -> Result<Vec<u8>, String> {
    let sealed = cipher(key)?
        .encrypt(&Nonce::from(*nonce), plain)
        .map_err(|_| "secretbox encryption failed".to_string())?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of a `nonce + tag + ciphertext` payload.
pub(crate) fn open(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (nonce, sealed) = match payload.split_first_chunk::<NONCE_LEN>() {
        Some((nonce, sealed)) if sealed.len() >= TAG_LEN => (Nonce::from(*nonce), sealed),
        _ => {
            return Err(OpenError::Short(format!(
                "{} payload bytes, less than a 24-byte nonce and a 16-byte tag",
                payload.len()
            )));
        }
    };
    cipher(key)
        .map_err(|_| OpenError::Rejected("a secretbox key is 32 bytes"))?
        .decrypt(&nonce, sealed)
        .map_err(|_| OpenError::Rejected("authentication failed (wrong key or altered value)"))
}

fn cipher(key: &[u8]) -> Result<XSalsa20Poly1305, String> {
    XSalsa20Poly1305::new_from_slice(key).map_err(|_| "a secretbox key is 32 bytes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected bytes from libsodium (C, through Python's ctypes), not RustCrypto:
    /// `crypto_secretbox_easy(c, b"hello, etcd", 11, bytes(range(200, 224)), bytes(range(32)))`,
    /// prefixed with the nonce. libsodium's `_easy` output is tag then ciphertext, the same
    /// layout as Go's `nacl/secretbox.Seal`.
    #[test]
    fn matches_libsodium() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let nonce: [u8; 24] = core::array::from_fn(|i| 200 + i as u8);
        let sealed = seal(&key, &nonce, b"hello, etcd").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hex::encode(&sealed),
            "c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf\
             cee43e5edec6b73901ae29d12d25a15f923703192f1e71a7f98be7"
        );
        assert_eq!(open(&key, &sealed).ok(), Some(b"hello, etcd".to_vec()));
    }

    #[test]
    fn tampering_and_wrong_keys_are_rejected() {
        let key = [4u8; 32];
        let sealed = seal(&key, &[6; 24], b"some plaintext").unwrap_or_else(|e| panic!("{e}"));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(
                matches!(open(&key, &bad), Err(OpenError::Rejected(_))),
                "byte {i}"
            );
        }
        assert!(matches!(
            open(&[5u8; 32], &sealed),
            Err(OpenError::Rejected(_))
        ));
        assert!(matches!(
            open(&key, &sealed[..39]),
            Err(OpenError::Short(_))
        ));
        assert_eq!(
            open(&key, &seal(&key, &[0; 24], b"").unwrap_or_default()).ok(),
            Some(Vec::new())
        );
    }
}
