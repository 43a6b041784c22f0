//! The `aescbc` provider: payload = 16-byte random IV + AES-CBC ciphertext of the PKCS#7-padded
//! value. There is no MAC and no additional data, so the etcd key is not bound in.
//!
//! Padding is added and checked by hand to mirror kube-apiserver's own check exactly: the last
//! byte `n` must satisfy `1 <= n <= len` and the last `n` bytes must all be `n` (the api-server
//! does not cap `n` at the block size, so neither does this). Because nothing authenticates the
//! ciphertext, a wrong key is caught only when the padding comes out malformed (about 255 times
//! in 256); otherwise it yields garbage that the codec then rejects.
//!
//! Upstream: `cbc.TransformToStorage`/`TransformFromStorage` in
//! <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/aes/aes.go>.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};

use super::OpenError;

pub(crate) const IV_LEN: usize = 16;
const BLOCK: usize = 16;

/// `iv` + CBC(`plain` + PKCS#7 padding). `key` is 16, 24 or 32 bytes.
pub(crate) fn seal(key: &[u8], iv: &[u8; IV_LEN], plain: &[u8]) -> Result<Vec<u8>, String> {
    let pad = BLOCK - plain.len() % BLOCK;
    let mut out = Vec::with_capacity(IV_LEN + plain.len() + pad);
    out.extend_from_slice(iv);
    out.extend_from_slice(plain);
    out.resize(IV_LEN + plain.len() + pad, pad as u8);
    let body = out.get_mut(IV_LEN..).ok_or("buffer too short")?;
    match key.len() {
        16 => encrypt::<aes::Aes128>(key, iv, body)?,
        24 => encrypt::<aes::Aes192>(key, iv, body)?,
        32 => encrypt::<aes::Aes256>(key, iv, body)?,
        n => return Err(format!("an AES key is 16, 24 or 32 bytes, not {n}")),
    }
    Ok(out)
}

/// The plaintext of an `iv + ciphertext` payload.
pub(crate) fn open(key: &[u8], payload: &[u8]) -> Result<Vec<u8>, OpenError> {
    let (iv, body) = match payload.split_at_checked(IV_LEN) {
        Some((iv, body)) if !body.is_empty() && body.len() % BLOCK == 0 => (iv, body),
        _ => {
            return Err(OpenError::Short(format!(
                "{} payload bytes are not a 16-byte IV followed by whole 16-byte blocks",
                payload.len()
            )));
        }
    };
    let mut plain = body.to_vec();
    let decrypted = match key.len() {
        16 => decrypt::<aes::Aes128>(key, iv, &mut plain),
        24 => decrypt::<aes::Aes192>(key, iv, &mut plain),
        32 => decrypt::<aes::Aes256>(key, iv, &mut plain),
        _ => Err("an AES key is 16, 24 or 32 bytes"),
    };
    decrypted.map_err(OpenError::Rejected)?;
    let pad = usize::from(plain.last().copied().unwrap_or(0));
    let keep = plain.len().checked_sub(pad);
    match keep {
        Some(keep) if pad > 0 && plain.iter().skip(keep).all(|&b| usize::from(b) == pad) => {
            plain.truncate(keep);
            Ok(plain)
        }
        _ => Err(OpenError::Rejected(
            "invalid PKCS#7 padding after decryption",
        )),
    }
}

fn encrypt<C>(key: &[u8], iv: &[u8], body: &mut [u8]) -> Result<(), String>
where
    C: BlockEncryptMut + BlockCipher + KeyInit,
{
    let len = body.len();
    cbc::Encryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| "bad AES key or IV length".to_string())?
        .encrypt_padded_mut::<NoPadding>(body, len)
        .map_err(|_| "plaintext is not whole blocks".to_string())?;
    Ok(())
}

fn decrypt<C>(key: &[u8], iv: &[u8], body: &mut [u8]) -> Result<(), &'static str>
where
    C: BlockDecryptMut + BlockCipher + KeyInit,
{
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| "bad AES key or IV length")?
        .decrypt_padded_mut::<NoPadding>(body)
        .map_err(|_| "ciphertext is not whole blocks")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// NIST SP 800-38A, appendix F.2.1 (CBC-AES128.Encrypt) and F.2.5 (CBC-AES256.Encrypt):
    /// four blocks, no padding. `seal` appends one block of PKCS#7 padding (a whole block of
    /// 0x10, since the input is block-aligned), so the NIST ciphertext is what follows the IV.
    /// Cross-checked with `openssl enc -aes-128-cbc -nopad` / `-aes-256-cbc -nopad`.
    #[test]
    fn nist_sp800_38a_cbc_vectors() {
        let iv: [u8; 16] = core::array::from_fn(|i| i as u8);
        let plain = unhex(
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
             30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        );
        let vectors = [
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
                 73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7",
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
                 39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ];
        for (key, cipher) in vectors {
            let key = unhex(key);
            let sealed = seal(&key, &iv, &plain).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sealed.len(), 16 + 64 + 16);
            assert_eq!(&sealed[..16], &iv);
            assert_eq!(hex::encode(&sealed[16..80]), hex::encode(unhex(cipher)));
            assert_eq!(open(&key, &sealed).ok(), Some(plain.clone()));
        }
    }

    #[test]
    fn padding_is_checked_like_the_api_server() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        for len in [0, 1, 15, 16, 17, 100] {
            let plain = vec![0xabu8; len];
            let sealed = seal(&key, &iv, &plain).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sealed.len(), 16 + (len / 16 + 1) * 16, "len {len}");
            assert_eq!(open(&key, &sealed).ok(), Some(plain));
        }
        // Ciphertexts whose plaintext ends in a bad pad: 0x00, 0x11 (> 16 but > len), and
        // 0x02 0x03 (inconsistent). Built by encrypting the raw block without padding.
        for last in [&[0u8][..], &[0x21], &[0x03, 0x02]] {
            let mut block = [0x41u8; 16];
            block[16 - last.len()..].copy_from_slice(last);
            let mut body = block;
            encrypt::<aes::Aes128>(&key, &iv, &mut body).unwrap_or_else(|e| panic!("{e}"));
            let payload = [&iv[..], &body].concat();
            assert!(
                matches!(open(&key, &payload), Err(OpenError::Rejected(_))),
                "{last:?}"
            );
        }
        // A pad longer than a block is accepted when consistent, as upstream does.
        let mut blocks = [0x41u8; 32];
        blocks[13..].fill(19);
        let mut body = blocks;
        encrypt::<aes::Aes128>(&key, &iv, &mut body).unwrap_or_else(|e| panic!("{e}"));
        let payload = [&iv[..], &body].concat();
        assert_eq!(open(&key, &payload).ok(), Some(vec![0x41u8; 13]));
    }

    #[test]
    fn short_payloads_are_reported_as_short() {
        let key = [7u8; 32];
        for len in [0, 15, 16, 17, 31, 33] {
            assert!(
                matches!(open(&key, &vec![0u8; len]), Err(OpenError::Short(_))),
                "{len}"
            );
        }
        assert!(seal(&[0u8; 15], &[0; 16], b"x").is_err());
    }
}
