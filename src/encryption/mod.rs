//! Encryption at rest: the values kube-apiserver encrypts in etcd under
//! `--encryption-provider-config`.
//!
//! Recovery reads Secrets (and whatever else the cluster encrypts) straight out of etcd or a
//! snapshot, with no api-server to decrypt them, so kubeboot must decrypt them itself with the
//! same `EncryptionConfiguration` file; and `fake-apiserver` must encrypt exactly as
//! kube-apiserver does so that tests exercise the real stored bytes.
//!
//! A stored value is `k8s:enc:<provider>:v1:<key name>:` + a provider-specific payload
//! (`aescbc.rs`, `aesgcm.rs`, `secretbox.rs`); `identity` stores the plain value, no prefix;
//! `kms` values (`k8s:enc:kms:v1:<plugin>:` and `k8s:enc:kms:v2:<plugin>:`) hold a data key
//! sealed by an external KMS and cannot be decrypted offline.
//!
//! Which provider applies:
//! - encrypting: the first provider of the resource's entry, found as kube-apiserver finds it:
//!   the exact `resource.group`, else `*.group` (`*.` for the core group), else `*.*`, else
//!   identity; a keyed provider encrypts with its first key (`transformerFromOverrides` and
//!   `NewPrefixTransformers`, which writes with the first transformer, in
//!   <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/server/options/encryptionconfig/config.go>);
//! - decrypting: by the value's own prefix, as the api-server's prefix transformers do, looking
//!   at every provider in the file (an etcd key does not reliably name the resource and group),
//!   then the key whose `name:` follows the provider prefix. If several configured keys share
//!   that provider and name, each distinct secret is tried in file order (the api-server, which
//!   knows the resource, tries only that resource's list; with aescbc, which has no MAC, a wrong
//!   secret whose padding happens to check out would win, so give such keys distinct names).
//!
//! Prefix constants: `aesCBCTransformerPrefixV1` etc. in the same `config.go`. Reference:
//! <https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/>.

mod aescbc;
mod aesgcm;
mod config;
mod secretbox;

use std::path::Path;

use aes_gcm::aead::OsRng;
use aes_gcm::aead::rand_core::RngCore;

use config::{Cipher, GroupResource, Key, Parsed, Provider};

/// The prefix of every value encrypted at rest.
const ENCRYPTED: &[u8] = b"k8s:enc:";

/// A parsed and validated `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`). Its `Debug`
/// shows key names and lengths, never key material.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    name: String,
    parsed: Parsed,
}

/// Why a config could not be read or a value decrypted or encrypted. Each message is one line,
/// starts with the file or the etcd key, names the provider and key where there is one, and
/// never contains key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// The config file is unreadable or invalid.
    #[error("{file}: invalid encryption provider config: {what}")]
    Config { file: String, what: String },
    /// The value names a provider the config does not have.
    #[error(
        "{key}: encrypted with provider {provider}{}, which the encryption provider config does not configure",
        key_name.as_ref().map(|k| format!(" (key {k:?})")).unwrap_or_default()
    )]
    UnknownProvider {
        key: String,
        provider: String,
        key_name: Option<String>,
    },
    /// The provider is configured, but with no key of this name.
    #[error(
        "{key}: encrypted with provider {provider} key {key_name:?}, which no {provider} provider in the encryption provider config has"
    )]
    UnknownKey {
        key: String,
        provider: String,
        key_name: String,
    },
    /// A KMS value: only the KMS plugin can unwrap its data key.
    #[error(
        "{key}: encrypted with provider kms {version} (plugin {plugin:?}); KMS-encrypted values need the KMS plugin and cannot be decrypted offline"
    )]
    Kms {
        key: String,
        version: String,
        plugin: String,
    },
    /// The payload is too short or not whole blocks (a cut or damaged value).
    #[error("{key}: provider {provider} key {key_name:?}: truncated value: {what}")]
    Truncated {
        key: String,
        provider: String,
        key_name: String,
        what: String,
    },
    /// Decryption failed: wrong key, or the value was altered.
    #[error("{key}: provider {provider} key {key_name:?}: cannot decrypt: {what}")]
    Decrypt {
        key: String,
        provider: String,
        key_name: String,
        what: String,
    },
    /// The `k8s:enc:` prefix is not followed by `<provider>:<version>:`.
    #[error("{key}: malformed encrypted value: {what}")]
    Malformed { key: String, what: String },
    /// The value could not be encrypted.
    #[error("{key}: cannot encrypt {resource} with provider {provider}: {what}")]
    Encrypt {
        key: String,
        resource: String,
        provider: String,
        what: String,
    },
}

/// Why a provider could not open a payload.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Too short, or not whole blocks.
    Short(String),
    /// Authentication or padding failed.
    Rejected(&'static str),
}

impl EncryptionConfig {
    /// Reads the file given to kube-apiserver as `--encryption-provider-config`.
    pub fn from_file(path: &Path) -> Result<Self, EncryptionError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| EncryptionError::Config {
            file: file.clone(),
            what: format!("cannot read: {e}"),
        })?;
        Self::from_yaml(&file, &text)
    }

    /// Parses config text; `name` (usually the file name) starts every error message.
    pub fn from_yaml(name: &str, text: &str) -> Result<Self, EncryptionError> {
        let parsed = config::parse(text).map_err(|what| EncryptionError::Config {
            file: name.to_string(),
            what,
        })?;
        Ok(Self {
            name: name.to_string(),
            parsed,
        })
    }

    /// Where the config came from (the name given to [`EncryptionConfig::from_yaml`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decrypts if `value` starts with `k8s:enc:`; returns the input unchanged otherwise.
    /// `etcd_key` is the full key the value is stored under (e.g. `/registry/secrets/ns/name`):
    /// `aesgcm` authenticates it, and every error names it.
    pub fn decrypt(&self, etcd_key: &str, value: &[u8]) -> Result<Vec<u8>, EncryptionError> {
        let Some(rest) = value.strip_prefix(ENCRYPTED) else {
            return Ok(value.to_vec());
        };
        let malformed = |what: String| EncryptionError::Malformed {
            key: etcd_key.to_string(),
            what: format!("{what}; expected k8s:enc:<provider>:<version>:"),
        };
        let (provider, rest) = split_label(rest).ok_or_else(|| {
            malformed(format!(
                "no ':' after the provider in k8s:enc:{}",
                label(rest)
            ))
        })?;
        let (version, rest) = split_label(rest).ok_or_else(|| {
            malformed(format!(
                "no ':' after the version in k8s:enc:{}:{}",
                label(provider),
                label(rest)
            ))
        })?;
        let cipher = match (provider, version) {
            (b"aescbc", b"v1") => Cipher::AesCbc,
            (b"aesgcm", b"v1") => Cipher::AesGcm,
            (b"secretbox", b"v1") => Cipher::Secretbox,
            (b"kms", b"v1" | b"v2") => {
                return Err(EncryptionError::Kms {
                    key: etcd_key.to_string(),
                    version: label(version),
                    plugin: split_label(rest)
                        .map(|(name, _)| label(name))
                        .unwrap_or_else(|| "?".to_string()),
                });
            }
            _ => {
                return Err(EncryptionError::UnknownProvider {
                    key: etcd_key.to_string(),
                    provider: format!("{}:{}", label(provider), label(version)),
                    key_name: split_label(rest).map(|(name, _)| label(name)),
                });
            }
        };
        let provider = cipher.name();
        // The key name as the value states it, for messages: up to the next ':', or all of it.
        let stated_name = || label(split_label(rest).map_or(rest, |(name, _)| name));

        // (key, payload) for every configured key this value could be under, distinct secrets.
        let mut any_provider = false;
        let mut candidates: Vec<(&Key, &[u8])> = Vec::new();
        for p in &self.parsed.all {
            let Provider::Keyed { cipher: c, keys } = p else {
                continue;
            };
            if *c != cipher {
                continue;
            }
            any_provider = true;
            let found = keys.iter().find_map(|k| {
                rest.strip_prefix(k.name.as_bytes())
                    .and_then(|r| r.strip_prefix(b":"))
                    .map(|payload| (k, payload))
            });
            if let Some((k, payload)) = found
                && !candidates.iter().any(|(c, _)| c.secret == k.secret)
            {
                candidates.push((k, payload));
            }
        }
        if !any_provider {
            return Err(EncryptionError::UnknownProvider {
                key: etcd_key.to_string(),
                provider: provider.to_string(),
                key_name: Some(stated_name()),
            });
        }
        let mut first_error = None;
        for (k, payload) in &candidates {
            let opened = match cipher {
                Cipher::AesCbc => aescbc::open(&k.secret, payload),
                Cipher::AesGcm => aesgcm::open(&k.secret, etcd_key, payload),
                Cipher::Secretbox => secretbox::open(&k.secret, payload),
            };
            match opened {
                Ok(plain) => return Ok(plain),
                Err(e) => {
                    first_error.get_or_insert_with(|| {
                        let (key, provider, key_name) =
                            (etcd_key.to_string(), provider.to_string(), k.name.clone());
                        match e {
                            OpenError::Short(what) => EncryptionError::Truncated {
                                key,
                                provider,
                                key_name,
                                what,
                            },
                            OpenError::Rejected(what) => EncryptionError::Decrypt {
                                key,
                                provider,
                                key_name,
                                what: what.to_string(),
                            },
                        }
                    });
                }
            }
        }
        Err(first_error.unwrap_or_else(|| EncryptionError::UnknownKey {
            key: etcd_key.to_string(),
            provider: provider.to_string(),
            key_name: stated_name(),
        }))
    }

    /// Encrypts as kube-apiserver would for `resource` (`secrets`, or `deployments.apps` style,
    /// group-qualified for non-core resources) stored under `etcd_key`: with the first provider
    /// configured for the resource and that provider's first key, and a fresh random IV or
    /// nonce from the OS. Identity (or no matching entry) returns `plain` unchanged; a KMS
    /// provider is an error.
    pub fn encrypt(
        &self,
        resource: &str,
        etcd_key: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        self.encrypt_filling(resource, etcd_key, plain, &mut |buf| {
            OsRng
                .try_fill_bytes(buf)
                .map_err(|e| format!("no randomness from the OS: {e}"))
        })
    }

    /// [`EncryptionConfig::encrypt`] with a fixed IV or nonce, for byte-exact test vectors.
    /// Never use a fixed nonce for real data.
    #[cfg(test)]
    pub(crate) fn encrypt_with_nonce(
        &self,
        resource: &str,
        etcd_key: &str,
        plain: &[u8],
        nonce: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        self.encrypt_filling(resource, etcd_key, plain, &mut |buf| {
            if buf.len() != nonce.len() {
                return Err(format!(
                    "the provider needs a {}-byte nonce, got {}",
                    buf.len(),
                    nonce.len()
                ));
            }
            buf.copy_from_slice(nonce);
            Ok(())
        })
    }

    /// The providers kube-apiserver would use for `resource`, or `None` for identity.
    fn providers_for(&self, resource: &str) -> Option<&[Provider]> {
        let gr = GroupResource::parse(resource);
        let by = &self.parsed.by_resource;
        by.get(&gr)
            .or_else(|| by.get(&GroupResource::any_in_group(&gr.group)))
            .or_else(|| by.get(&GroupResource::any()))
            .map(Vec::as_slice)
    }

    fn encrypt_filling(
        &self,
        resource: &str,
        etcd_key: &str,
        plain: &[u8],
        fill: &mut dyn FnMut(&mut [u8]) -> Result<(), String>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let error = |provider: &str, what: String| EncryptionError::Encrypt {
            key: etcd_key.to_string(),
            resource: resource.to_string(),
            provider: provider.to_string(),
            what,
        };
        let (cipher, key) = match self.providers_for(resource).and_then(<[_]>::first) {
            None | Some(Provider::Identity) => return Ok(plain.to_vec()),
            Some(Provider::Kms { version, name }) => {
                return Err(error(
                    "kms",
                    format!(
                        "KMS {version} plugin {name:?} is the first provider, and kubeboot has no KMS plugin"
                    ),
                ));
            }
            Some(Provider::Keyed { cipher, keys }) => match keys.first() {
                Some(key) => (*cipher, key),
                None => return Err(error(cipher.name(), "the provider has no keys".into())),
            },
        };
        let fail = |what: String| error(cipher.name(), format!("key {:?}: {what}", key.name));
        let payload = match cipher {
            Cipher::AesCbc => {
                let mut iv = [0u8; aescbc::IV_LEN];
                fill(&mut iv).map_err(fail)?;
                aescbc::seal(&key.secret, &iv, plain)
            }
            Cipher::AesGcm => {
                let mut nonce = [0u8; aesgcm::NONCE_LEN];
                fill(&mut nonce).map_err(fail)?;
                aesgcm::seal(&key.secret, &nonce, etcd_key, plain)
            }
            Cipher::Secretbox => {
                let mut nonce = [0u8; secretbox::NONCE_LEN];
                fill(&mut nonce).map_err(fail)?;
                secretbox::seal(&key.secret, &nonce, plain)
            }
        }
        .map_err(fail)?;
        let prefix = format!("k8s:enc:{}:v1:{}:", cipher.name(), key.name);
        let mut out = Vec::with_capacity(prefix.len() + payload.len());
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }
}

/// Splits `bytes` at the first `:` into a label and the rest; `None` if there is no `:`.
fn split_label(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b':')?;
    Some((bytes.get(..at)?, bytes.get(at + 1..)?))
}

/// A prefix label for an error message: printable ASCII as is, anything else (ciphertext, junk)
/// replaced so that no payload byte reaches a message.
fn label(bytes: &[u8]) -> String {
    if !bytes.is_empty() && bytes.len() <= 253 && bytes.iter().all(u8::is_ascii_graphic) {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        "?".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET_KEY: &str = "/registry/secrets/default/db";

    fn config(body: &str) -> EncryptionConfig {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n{body}"
        );
        EncryptionConfig::from_yaml("enc.yaml", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// key1 = 32 bytes 0x00..0x1f (base64 of bytes(range(32))).
    const KEY32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// 16 bytes "1234567890123456".
    const KEY16: &str = "MTIzNDU2Nzg5MDEyMzQ1Ng==";

    fn all_providers() -> EncryptionConfig {
        config(&format!(
            "resources:
- resources: [secrets]
  providers:
  - aescbc: {{keys: [{{name: key1, secret: {KEY32}}}, {{name: old, secret: {KEY16}}}]}}
  - aesgcm: {{keys: [{{name: gcm1, secret: {KEY16}}}]}}
  - secretbox: {{keys: [{{name: box1, secret: {KEY32}}}]}}
  - identity: {{}}
- resources: [configmaps]
  providers:
  - aesgcm: {{keys: [{{name: gcm1, secret: {KEY16}}}]}}
- resources: ['*.apps']
  providers:
  - secretbox: {{keys: [{{name: box1, secret: {KEY32}}}]}}
- resources: [events]
  providers:
  - identity: {{}}
  - aescbc: {{keys: [{{name: key1, secret: {KEY32}}}]}}
- resources: ['*.*']
  providers:
  - aescbc: {{keys: [{{name: key1, secret: {KEY32}}}]}}
"
        ))
    }

    /// Byte-exact aescbc through the public path. Expected bytes from OpenSSL, independently:
    /// `printf 'k8s\0hi' | openssl enc -aes-256-cbc -K 000102…1f -iv 0f0e0d…00 | xxd -p`
    /// (OpenSSL pads with PKCS#7 like the api-server), then the prefix and IV prepended.
    #[test]
    fn aescbc_stored_bytes_match_openssl() {
        let cfg = all_providers();
        let iv: Vec<u8> = (0u8..16).rev().collect();
        let stored = cfg
            .encrypt_with_nonce("secrets", SECRET_KEY, b"k8s\0hi", &iv)
            .unwrap_or_else(|e| panic!("{e}"));
        let (prefix, payload) = stored.split_at(b"k8s:enc:aescbc:v1:key1:".len());
        assert_eq!(prefix, b"k8s:enc:aescbc:v1:key1:");
        assert_eq!(&payload[..16], &iv[..]);
        assert_eq!(hex::encode(&payload[16..]), OPENSSL_K8S_HI);
        assert_eq!(
            cfg.decrypt(SECRET_KEY, &stored).ok(),
            Some(b"k8s\0hi".to_vec())
        );
    }

    const OPENSSL_K8S_HI: &str = "6efce2bcc0874dec1d6e3c510221feed";

    #[test]
    fn each_provider_round_trips_under_its_own_prefix() {
        let cfg = all_providers();
        let plain = b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Secret";
        // (resource, expected prefix)
        let cases = [
            ("secrets", Some("k8s:enc:aescbc:v1:key1:")),
            ("configmaps", Some("k8s:enc:aesgcm:v1:gcm1:")),
            ("deployments.apps", Some("k8s:enc:secretbox:v1:box1:")),
            ("widgets.example.com", Some("k8s:enc:aescbc:v1:key1:")),
            ("pods", Some("k8s:enc:aescbc:v1:key1:")),
            ("events", None),
        ];
        for (resource, prefix) in cases {
            let key = format!("/registry/{resource}/ns/x");
            let stored = cfg
                .encrypt(resource, &key, plain)
                .unwrap_or_else(|e| panic!("{e}"));
            match prefix {
                Some(p) => assert!(stored.starts_with(p.as_bytes()), "{resource}"),
                None => assert_eq!(stored, plain),
            }
            assert_eq!(
                cfg.decrypt(&key, &stored).ok(),
                Some(plain.to_vec()),
                "{resource}"
            );
        }
        // Random IVs: two encryptions differ.
        let a = cfg
            .encrypt("secrets", SECRET_KEY, plain)
            .unwrap_or_default();
        let b = cfg
            .encrypt("secrets", SECRET_KEY, plain)
            .unwrap_or_default();
        assert_ne!(a, b);
    }

    #[test]
    fn core_group_wildcard_and_no_match() {
        let cfg = config(&format!(
            "resources:
- resources: ['*.']
  providers: [{{secretbox: {{keys: [{{name: k, secret: {KEY32}}}]}}}}]
"
        ));
        let core = cfg.encrypt("configmaps", "/registry/configmaps/a/b", b"x");
        assert!(
            core.unwrap_or_default()
                .starts_with(b"k8s:enc:secretbox:v1:k:")
        );
        // Not in the core group, and no *.*: identity.
        let apps = cfg.encrypt("deployments.apps", "/registry/deployments/a/b", b"x");
        assert_eq!(apps.ok(), Some(b"x".to_vec()));
    }

    #[test]
    fn unencrypted_values_pass_through() {
        let cfg = all_providers();
        for value in [&b""[..], b"k8s\0\x0a", b"{\"kind\":\"Widget\"}", b"k8s:en"] {
            assert_eq!(cfg.decrypt(SECRET_KEY, value).ok(), Some(value.to_vec()));
        }
    }

    #[test]
    fn older_keys_still_decrypt() {
        // Written before a rotation with the second key "old"; still readable.
        let cfg = all_providers();
        let old = config(&format!(
            "resources: [{{resources: [secrets], providers: [{{aescbc: {{keys: [{{name: old, secret: {KEY16}}}]}}}}]}}]"
        ));
        let stored = old.encrypt("secrets", SECRET_KEY, b"v").unwrap_or_default();
        assert!(stored.starts_with(b"k8s:enc:aescbc:v1:old:"));
        assert_eq!(cfg.decrypt(SECRET_KEY, &stored).ok(), Some(b"v".to_vec()));
    }

    #[test]
    fn aesgcm_binds_the_etcd_key() {
        let cfg = all_providers();
        let stored = cfg
            .encrypt("configmaps", SECRET_KEY, b"v")
            .unwrap_or_default();
        let err = cfg
            .decrypt("/registry/secrets/default/other", &stored)
            .err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("/registry/secrets/default/other: provider aesgcm key \"gcm1\": cannot decrypt: authentication failed"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_key_provider_and_key_name() {
        let cfg = all_providers();
        let k = SECRET_KEY;
        let cases: [(&[u8], &str); 10] = [
            (
                b"k8s:enc:aescbc:v1:nokey:0123456789abcdef0123456789abcdef",
                "/registry/secrets/default/db: encrypted with provider aescbc key \"nokey\", which no aescbc provider in the encryption provider config has",
            ),
            (
                b"k8s:enc:aescbc:v1:key1:short",
                "/registry/secrets/default/db: provider aescbc key \"key1\": truncated value: 5 payload bytes",
            ),
            (
                b"k8s:enc:secretbox:v1:box1:\x01\x02",
                "provider secretbox key \"box1\": truncated value: 2 payload bytes",
            ),
            (
                b"k8s:enc:kms:v2:vault:\x0a\x01",
                "/registry/secrets/default/db: encrypted with provider kms v2 (plugin \"vault\"); KMS-encrypted values need the KMS plugin and cannot be decrypted offline",
            ),
            (
                b"k8s:enc:kms:v1:legacy:\x0a\x01",
                "provider kms v1 (plugin \"legacy\")",
            ),
            (
                b"k8s:enc:aescbc:v2:key1:xx",
                "encrypted with provider aescbc:v2 (key \"key1\"), which the encryption provider config does not configure",
            ),
            (
                b"k8s:enc:rot13:v1:k:xx",
                "encrypted with provider rot13:v1 (key \"k\")",
            ),
            (
                b"k8s:enc:aescbc",
                "malformed encrypted value: no ':' after the provider in k8s:enc:aescbc; expected k8s:enc:<provider>:<version>:",
            ),
            (
                b"k8s:enc:aesgcm:v1",
                "no ':' after the version in k8s:enc:aesgcm:v1",
            ),
            (
                b"k8s:enc:aesgcm:v1:gcm1",
                "encrypted with provider aesgcm key \"gcm1\", which no aesgcm provider",
            ),
        ];
        for (value, want) in cases {
            let text = cfg
                .decrypt(k, value)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                text.contains(want),
                "{}\n  got: {text}\n want: {want}",
                String::from_utf8_lossy(value)
            );
            assert!(text.starts_with(k) && !text.contains('\n'), "{text}");
        }

        // A provider kind the config does not have at all.
        let only_cbc = config(&format!(
            "resources: [{{resources: [secrets], providers: [{{aescbc: {{keys: [{{name: key1, secret: {KEY32}}}]}}}}]}}]"
        ));
        let boxed = cfg
            .encrypt("deployments.apps", "/registry/deployments/a/b", b"x")
            .unwrap_or_default();
        let text = only_cbc
            .decrypt("/registry/deployments/a/b", &boxed)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            text.as_deref(),
            Some(
                "/registry/deployments/a/b: encrypted with provider secretbox (key \"box1\"), which the encryption provider config does not configure"
            )
        );
    }

    #[test]
    fn wrong_key_is_a_clear_error() {
        let cfg = all_providers();
        let other = config(
            "resources: [{resources: [secrets, configmaps], providers: [{aescbc: {keys: [{name: key1, secret: MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=}]}}]}]",
        );
        // With a fixed IV the wrong-key plaintext is deterministic; this one has bad padding.
        let stored = cfg
            .encrypt_with_nonce("secrets", SECRET_KEY, b"top secret value", &[0u8; 16])
            .unwrap_or_else(|e| panic!("{e}"));
        let err = other.decrypt(SECRET_KEY, &stored).err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(
                "/registry/secrets/default/db: provider aescbc key \"key1\": cannot decrypt: invalid PKCS#7 padding after decryption"
            )
        );
        // Secretbox and GCM authenticate, so a wrong key always fails.
        let other = config(
            "resources: [{resources: ['*.*'], providers: [{secretbox: {keys: [{name: box1, secret: MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=}]}}, {aesgcm: {keys: [{name: gcm1, secret: MTExMTExMTExMTExMTExMQ==}]}}]}]",
        );
        for resource in ["deployments.apps", "configmaps"] {
            let stored = cfg.encrypt(resource, SECRET_KEY, b"v").unwrap_or_default();
            let text = other
                .decrypt(SECRET_KEY, &stored)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                text.contains("cannot decrypt: authentication failed"),
                "{text}"
            );
            assert!(!text.contains("top secret"));
        }
    }

    #[test]
    fn same_key_name_in_two_entries_tries_each_secret() {
        // "shared" means different secrets for secrets and for configmaps.
        let cfg = config(&format!(
            "resources:
- resources: [secrets]
  providers: [{{aesgcm: {{keys: [{{name: shared, secret: {KEY16}}}]}}}}]
- resources: [configmaps]
  providers: [{{aesgcm: {{keys: [{{name: shared, secret: {KEY32}}}]}}}}]
"
        ));
        let key = "/registry/configmaps/ns/c";
        let stored = cfg.encrypt("configmaps", key, b"cm").unwrap_or_default();
        assert_eq!(cfg.decrypt(key, &stored).ok(), Some(b"cm".to_vec()));
    }

    #[test]
    fn kms_first_cannot_encrypt() {
        let cfg = config(
            "resources: [{resources: [secrets], providers: [{kms: {apiVersion: v2, name: vault, endpoint: 'unix:///kms.sock'}}, {identity: {}}]}]",
        );
        let err = cfg
            .encrypt("secrets", SECRET_KEY, b"x")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "/registry/secrets/default/db: cannot encrypt secrets with provider kms: KMS v2 plugin \"vault\" is the first provider, and kubeboot has no KMS plugin"
            )
        );
    }

    #[test]
    fn junk_in_the_prefix_is_not_echoed() {
        let cfg = all_providers();
        let text = cfg
            .decrypt(SECRET_KEY, b"k8s:enc:aescbc:v1:\xff\xfesecret-ish:\x00")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            text.contains("key \"?\"") && !text.contains("secret-ish"),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn random_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let cfg = all_providers();
            for prefix in [
                &b"k8s:enc:aescbc:v1:key1:"[..],
                b"k8s:enc:aesgcm:v1:gcm1:",
                b"k8s:enc:secretbox:v1:box1:",
                b"k8s:enc:",
            ] {
                let value = [prefix, &payload].concat();
                match cfg.decrypt(SECRET_KEY, &value) {
                    Ok(_) => {}
                    Err(e) => {
                        let text = e.to_string();
                        prop_assert!(text.starts_with(SECRET_KEY) && !text.contains('\n'), "{}", text);
                    }
                }
            }
        }
    }
}
