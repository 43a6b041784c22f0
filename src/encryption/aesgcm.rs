//! The `aesgcm` provider: payload = 12-byte random nonce + AES-GCM ciphertext + 16-byte tag,
//! with the etcd key as the additional authenticated data.
//!
//! The authenticated data is the full etcd key the value is stored under (e.g.
//! `/registry/secrets/default/db`): the etcd3 store calls the transformer with
//! `authenticatedDataString(preparedKey)` on every read and write, and the GCM transformer passes
//! `dataCtx.AuthenticatedData()` to `Seal`/`Open`. A value copied to another key therefore fails
//! to decrypt, which is the point. The `k8s:enc:aesgcm:v1:<key>:` prefix itself is not
//! authenticated (it is stripped before the transformer runs).
//!
//! Upstream: `gcm.TransformToStorage`/`TransformFromStorage` in
//! <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/aes/aes.go>,
//! and `Create`/`Get` (`authenticatedDataString(preparedKey)`) in
//! <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go>.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{AesGcm, Nonce};

use super::OpenError;

pub(crate) const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

type Aes128Gcm = AesGcm<aes::Aes128, U12>;
type Aes192Gcm = AesGcm<aes::Aes192, U12>;
type Aes256Gcm = AesGcm<aes::Aes256, U12>;

/// `nonce` + GCM(`plain`, aad = `etcd_key`) + tag.
pub(crate) fn seal(
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    etcd_key: &str,
    plain: &[u8],
) -> Result<Vec<u8>, String> {
    let payload = Payload {
        msg: plain,
        aad: etcd_key.as_bytes(),
    };
    let n = Nonce::<U12>::from(*nonce);
    let sealed = match key.len() {
        16 => cipher::<Aes128Gcm>(key)?.encrypt(&n, payload),
        24 => cipher::<Aes192Gcm>(key)?.encrypt(&n, payload),
        32 => cipher::<Aes256Gcm>(key)?.encrypt(&n, payload),
        n => return Err(format!("an AES key is 16, 24 or 32 bytes, not {n}")),
    }
    .map_err(|_| "AES-GCM encryption failed".to_string())?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of a `nonce + ciphertext + tag` payload stored under `etcd_key`.
pub(crate) fn open(key: &[u8], etcd_key: &str, payload: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (nonce, sealed) = match payload.split_first_chunk::<NONCE_LEN>() {
        Some((nonce, sealed)) if sealed.len() >= TAG_LEN => (Nonce::<U12>::from(*nonce), sealed),
        _ => {
            return Err(OpenError::Short(format!(
                "{} payload bytes, less than a 12-byte nonce and a 16-byte tag",
                payload.len()
            )));
        }
    };
    let nonce = &nonce;
    let payload = Payload {
        msg: sealed,
        aad: etcd_key.as_bytes(),
    };
    let bad_key = |_| OpenError::Rejected("an AES key is 16, 24 or 32 bytes");
    match key.len() {
        16 => cipher::<Aes128Gcm>(key).map_err(bad_key)?.decrypt(nonce, payload),
        24 => cipher::<Aes192Gcm>(key).map_err(bad_key)?.decrypt(nonce, payload),
        32 => cipher::<Aes256Gcm>(key).map_err(bad_key)?.decrypt(nonce, payload),
        _ => return Err(bad_key(String::new())),
    }
    .map_err(|_| {
        OpenError::Rejected("authentication failed (wrong key, altered value, or a value copied from another etcd key)")
    })
}

fn cipher<C: KeyInit>(key: &[u8]) -> Result<C, String> {
    C::new_from_slice(key).map_err(|_| "bad AES key length".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/registry/secrets/default/db";

    /// Expected bytes from Python's `cryptography` package, which wraps OpenSSL, not RustCrypto:
    /// `AESGCM(bytes(range(32))).encrypt(bytes(range(100, 112)), b"hello, etcd",
    /// b"/registry/secrets/default/db")` (ciphertext then tag, like Go's `Seal`).
    #[test]
    fn matches_an_independent_gcm_with_the_etcd_key_as_aad() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let nonce: [u8; 12] = core::array::from_fn(|i| 100 + i as u8);
        let sealed = seal(&key, &nonce, KEY, b"hello, etcd").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hex::encode(&sealed), EXPECTED_GCM);
        assert_eq!(open(&key, KEY, &sealed).ok(), Some(b"hello, etcd".to_vec()));
    }

    /// `nonce` (64..6f) + ciphertext (11 bytes) + tag. With no AAD the same call gives the tag
    /// `6c06ea557df30b55bb66588395e7bcdd` instead, so the tag really depends on the etcd key.
    const EXPECTED_GCM: &str =
        "6465666768696a6b6c6d6e6f207eb20a16c576fb4a013b4f31b121aa472d14970de1f598568f0c";

    #[test]
    fn every_key_size_round_trips_and_binds_the_etcd_key() {
        for len in [16, 24, 32] {
            let key = vec![0x5au8; len];
            let sealed = seal(&key, &[1; 12], KEY, b"data").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sealed.len(), 12 + 4 + 16);
            assert_eq!(open(&key, KEY, &sealed).ok(), Some(b"data".to_vec()));
            assert!(matches!(
                open(&key, "/registry/secrets/default/other", &sealed),
                Err(OpenError::Rejected(_))
            ));
        }
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let key = [3u8; 16];
        let sealed = seal(&key, &[2; 12], KEY, b"some plaintext").unwrap_or_else(|e| panic!("{e}"));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(open(&key, KEY, &bad), Err(OpenError::Rejected(_))),
                "byte {i}"
            );
        }
        assert!(matches!(
            open(&key, KEY, &sealed[..27]),
            Err(OpenError::Short(_))
        ));
    }
}
