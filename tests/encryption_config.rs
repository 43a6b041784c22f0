//! Encryption at rest against files: `EncryptionConfiguration`s as an operator writes them, and
//! stored values made by tools that share no code with kubeboot (OpenSSL for aescbc, Python
//! `cryptography` for aesgcm, libsodium for secretbox; see `tests/data/encryption/make-vectors.sh`).

use std::path::{Path, PathBuf};

use kubeboot::codec;
use kubeboot::encryption::{EncryptionConfig, EncryptionError};

/// The etcd key the fixtures were encrypted for (aesgcm authenticates it).
const ETCD_KEY: &str = "/registry/secrets/default/db";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/encryption")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    let path = data(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config() -> EncryptionConfig {
    EncryptionConfig::from_file(&data("encryption-config.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn decrypts_values_encrypted_by_other_implementations() {
    let cfg = config();
    let plain = read("secret-db.plain");
    for provider in ["aescbc", "aesgcm", "secretbox"] {
        let stored = read(&format!("secret-db.{provider}"));
        assert!(stored.starts_with(format!("k8s:enc:{provider}:v1:").as_bytes()));
        let got = cfg
            .decrypt(ETCD_KEY, &stored)
            .unwrap_or_else(|e| panic!("{provider}: {e}"));
        assert_eq!(got, plain, "{provider}");
    }
}

/// The aescbc fixture byte for byte: prefix, the IV make-vectors.sh chose, then OpenSSL's
/// AES-256-CBC of the 114-byte plaintext (PKCS#7-padded to 128 bytes).
#[test]
fn aescbc_fixture_layout() {
    let stored = read("secret-db.aescbc");
    let (prefix, payload) = stored.split_at(b"k8s:enc:aescbc:v1:key1:".len());
    assert_eq!(prefix, b"k8s:enc:aescbc:v1:key1:");
    assert_eq!(&payload[..16], (0xa0u8..=0xaf).collect::<Vec<_>>());
    assert_eq!(payload.len(), 16 + 128);
    assert_eq!(read("secret-db.plain").len(), 114);
}

#[test]
fn decrypted_secret_decodes() {
    let plain = config()
        .decrypt(ETCD_KEY, &read("secret-db.aescbc"))
        .unwrap_or_else(|e| panic!("{e}"));
    let decoded = codec::decode(ETCD_KEY, &plain).unwrap_or_else(|e| panic!("{e}"));
    let object = &decoded.object;
    assert_eq!(object["kind"], "Secret");
    assert_eq!(object["metadata"]["name"], "db");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert_eq!(object["data"]["password"], "aHVudGVyMg=="); // base64("hunter2")
    assert_eq!(object["type"], "Opaque");
}

#[test]
fn without_a_config_the_codec_names_the_provider() {
    let err = codec::decode(ETCD_KEY, &read("secret-db.secretbox")).err();
    assert!(matches!(
        err,
        Some(codec::CodecError::Encrypted { ref provider, ref key_name, .. })
            if provider == "secretbox" && key_name.as_deref() == Some("box1")
    ));
}

#[test]
fn aesgcm_value_moved_to_another_key_fails() {
    let err = config()
        .decrypt(
            "/registry/secrets/kube-system/db",
            &read("secret-db.aesgcm"),
        )
        .err()
        .map(|e| e.to_string());
    let text = err.unwrap_or_default();
    assert!(
        text.starts_with(
            "/registry/secrets/kube-system/db: provider aesgcm key \"gcm1\": cannot decrypt: authentication failed"
        ),
        "{text}"
    );
}

#[test]
fn tampered_fixtures_fail_cleanly() {
    let cfg = config();
    for provider in ["aesgcm", "secretbox"] {
        let mut stored = read(&format!("secret-db.{provider}"));
        let last = stored.len() - 1;
        stored[last] ^= 0x01;
        let err = cfg.decrypt(ETCD_KEY, &stored).err();
        assert!(
            matches!(err, Some(EncryptionError::Decrypt { provider: ref p, .. }) if p == provider),
            "{provider}: {err:?}"
        );
    }
    // Cut mid-block: aescbc cannot authenticate, but the length check catches it.
    let stored = read("secret-db.aescbc");
    let err = cfg.decrypt(ETCD_KEY, &stored[..stored.len() - 5]).err();
    assert!(
        matches!(err, Some(EncryptionError::Truncated { .. })),
        "{err:?}"
    );
}

#[test]
fn encrypts_with_the_first_provider_for_the_resource() {
    let cfg = config();
    let plain = read("secret-db.plain");
    // (resource, expected prefix; None = stored as is)
    let cases = [
        ("secrets", Some("k8s:enc:aescbc:v1:key1:")),
        ("configmaps", Some("k8s:enc:aesgcm:v1:gcm1:")),
        ("deployments.apps", Some("k8s:enc:aesgcm:v1:gcm1:")),
        ("events", None),
        ("pods", Some("k8s:enc:secretbox:v1:box1:")),
        ("widgets.example.com", Some("k8s:enc:secretbox:v1:box1:")),
    ];
    for (resource, prefix) in cases {
        let key = format!("/registry/{resource}/default/x");
        let stored = cfg
            .encrypt(resource, &key, &plain)
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
        match prefix {
            Some(p) => assert!(stored.starts_with(p.as_bytes()), "{resource}"),
            None => assert_eq!(stored, plain, "{resource}"),
        }
        assert_eq!(
            cfg.decrypt(&key, &stored).ok(),
            Some(plain.clone()),
            "{resource}"
        );
    }
}

#[test]
fn kms_values_and_kms_first_configs_are_clear_errors() {
    let cfg = EncryptionConfig::from_file(&data("kms-only.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let err = cfg
        .decrypt(ETCD_KEY, b"k8s:enc:kms:v2:vault:\x0a\x20sealed")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "/registry/secrets/default/db: encrypted with provider kms v2 (plugin \"vault\"); KMS-encrypted values need the KMS plugin and cannot be decrypted offline"
        )
    );
    let err = cfg.encrypt("secrets", ETCD_KEY, b"x").err();
    assert!(
        matches!(err, Some(EncryptionError::Encrypt { ref provider, .. }) if provider == "kms")
    );
    // A value from a provider this config lacks.
    let err = cfg.decrypt(ETCD_KEY, &read("secret-db.aescbc")).err();
    assert!(matches!(
        err,
        Some(EncryptionError::UnknownProvider { ref provider, ref key_name, .. })
            if provider == "aescbc" && key_name.as_deref() == Some("key1")
    ));
}

#[test]
fn bad_config_files_are_one_line_errors_naming_the_file() {
    let cases = [
        (
            "bad-base64.yaml",
            "resources[0].providers[0].aescbc.keys[0] (\"key1\"): the secret is not valid standard base64",
        ),
        (
            "short-key.yaml",
            "resources[0].providers[0].aescbc.keys[0] (\"key1\"): aescbc keys must be 16, 24 or 32 bytes; this one is 15 bytes",
        ),
        (
            "unknown-provider.yaml",
            "resources[0].providers[0]: unknown provider \"aesctr\" (expected one of aescbc, aesgcm, secretbox, kms, identity)",
        ),
        ("not-yaml.yaml", "not valid YAML"),
        ("empty.yaml", "the file is empty"),
        ("no-such-file.yaml", "cannot read"),
    ];
    for (name, want) in cases {
        let path = data(name);
        let err = EncryptionConfig::from_file(&path).err();
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        let prefix = format!("{}: invalid encryption provider config: ", path.display());
        assert!(text.starts_with(&prefix), "{name}: {text}");
        assert!(text.contains(want), "{name}\n  got: {text}\n want: {want}");
        assert!(!text.contains('\n'), "{name}: {text}");
        assert!(matches!(err, Some(EncryptionError::Config { .. })));
    }
    // Never the secret itself, even when it is malformed.
    let text = EncryptionConfig::from_file(&data("bad-base64.yaml"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!text.contains("this is not base64"), "{text}");
}

#[test]
fn debug_output_hides_key_material() {
    let shown = format!("{:?}", config());
    // base64 of the aescbc key, and its first raw bytes as Debug would print them.
    assert!(
        !shown.contains("AAECAwQF") && !shown.contains("[0, 1, 2, 3"),
        "{shown}"
    );
    assert!(shown.contains("key1"));
}
