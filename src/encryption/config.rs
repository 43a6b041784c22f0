//! Reading and validating an `EncryptionConfiguration` file.
//!
//! The checks are the ones kube-apiserver makes before it accepts a file, so a config kubeboot
//! accepts is one the api-server could have run with, and a key that could never have encrypted
//! anything is reported when the file is read, not as a confusing decrypt failure later:
//! - exactly one provider per `providers` entry, named `aescbc`, `aesgcm`, `secretbox`, `kms` or
//!   `identity`;
//! - every key has a name and a standard-base64 secret; AES keys (CBC and GCM alike) are 16, 24
//!   or 32 bytes, secretbox keys 32 bytes. (The reference page says CBC keys are 32 bytes, but the
//!   validator accepts all three AES sizes for both modes, and so does `aes.NewCipher`.)
//! - resources are lower case, `*` alone is refused (`*.` is the core group), and a resource
//!   listed after a wildcard that already covers it is refused because it could never apply.
//!
//! Upstream: the v1 API reference
//! <https://kubernetes.io/docs/reference/config-api/apiserver-encryption.v1/>, the validator
//! <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/apis/config/validation/validation.go>
//! and the loader
//! <https://github.com/kubernetes/kubernetes/blob/master/staging/src/k8s.io/apiserver/pkg/server/options/encryptionconfig/config.go>.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The only API version kube-apiserver decodes for this file.
pub(crate) const API_VERSION: &str = "apiserver.config.k8s.io/v1";
pub(crate) const KIND: &str = "EncryptionConfiguration";

/// Go's `base64.StdEncoding`: padded, and (unlike the `base64` crate's default) tolerant of
/// non-zero trailing bits, since Go's decoder is not `Strict()`.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// A group and resource as `schema.ParseGroupResource` splits them: at the first `.`, so
/// `secrets` is `("", "secrets")`, `deployments.apps` is `("apps", "deployments")`, `*.` is
/// `("", "*")` and `*.*` is `("*", "*")`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub(crate) fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((resource, group)) => Self {
                group: group.to_string(),
                resource: resource.to_string(),
            },
            None => Self {
                group: String::new(),
                resource: text.to_string(),
            },
        }
    }

    pub(crate) fn any_in_group(group: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: "*".to_string(),
        }
    }

    pub(crate) fn any() -> Self {
        Self::any_in_group("*")
    }

    /// As the config spells it (`*.` for the core group's wildcard).
    fn spelled(&self) -> String {
        match (self.group.as_str(), self.resource.as_str()) {
            ("", "*") => "*.".to_string(),
            ("", r) => r.to_string(),
            (g, r) => format!("{r}.{g}"),
        }
    }
}

/// The cipher of a provider that holds keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cipher {
    AesCbc,
    AesGcm,
    Secretbox,
}

impl Cipher {
    /// The provider name, as in the config and in the stored prefix `k8s:enc:<name>:v1:`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cipher::AesCbc => "aescbc",
            Cipher::AesGcm => "aesgcm",
            Cipher::Secretbox => "secretbox",
        }
    }

    fn key_sizes(self) -> (&'static [usize], &'static str) {
        match self {
            Cipher::AesCbc | Cipher::AesGcm => (&[16, 24, 32], "16, 24 or 32"),
            Cipher::Secretbox => (&[32], "32"),
        }
    }
}

/// A named key; the secret is never printed (see the manual `Debug`).
#[derive(Clone)]
pub(crate) struct Key {
    pub name: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// One entry of a `providers` list.
#[derive(Debug, Clone)]
pub(crate) enum Provider {
    Keyed {
        cipher: Cipher,
        keys: Vec<Key>,
    },
    /// `version` is `v1` or `v2`; values carry `k8s:enc:kms:<version>:<name>:`.
    Kms {
        version: String,
        name: String,
    },
    Identity,
}

/// The validated file: for each group/resource, the providers of every entry that lists it, in
/// file order (kube-apiserver appends them the same way; the first one encrypts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub by_resource: BTreeMap<GroupResource, Vec<Provider>>,
    /// Every provider in file order, for decryption, which goes by the value's prefix.
    pub all: Vec<Provider>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Option<Vec<ResourceEntry>>,
}

#[derive(Deserialize)]
struct ResourceEntry {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<BTreeMap<String, Value>>,
}

#[derive(Deserialize)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    #[serde(default)]
    name: String,
    /// Kept as a YAML value so that a wrongly typed secret is reported without echoing it.
    #[serde(default)]
    secret: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KmsConfig {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    name: String,
}

const PROVIDER_NAMES: &str = "aescbc, aesgcm, secretbox, kms, identity";

/// Parses and validates; an `Err` is the problem, without the file name, on one line.
pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    if text.trim().is_empty() {
        return Err("the file is empty".to_string());
    }
    let file: File = serde_yaml_ng::from_str(text)
        .map_err(|e| one_line(&format!("not valid YAML: {}", redact(&e.to_string()))))?;
    match (file.api_version.as_deref(), file.kind.as_deref()) {
        (Some(API_VERSION), Some(KIND)) => {}
        (api_version, kind) => {
            return Err(format!(
                "apiVersion {:?}, kind {:?}: expected apiVersion {API_VERSION}, kind {KIND}",
                api_version.unwrap_or(""),
                kind.unwrap_or("")
            ));
        }
    }
    let entries = match file.resources {
        Some(entries) if !entries.is_empty() => entries,
        _ => return Err("resources: at least one entry is required".to_string()),
    };
    let mut parsed = Parsed::default();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("resources[{i}]");
        if entry.resources.is_empty() {
            return Err(format!("{at}.resources: at least one resource is required"));
        }
        if entry.providers.is_empty() {
            return Err(format!("{at}.providers: at least one provider is required"));
        }
        let providers = entry
            .providers
            .iter()
            .enumerate()
            .map(|(j, p)| provider(&format!("{at}.providers[{j}]"), p))
            .collect::<Result<Vec<_>, _>>()?;
        for (j, name) in entry.resources.iter().enumerate() {
            let gr = resource(&format!("{at}.resources[{j}]"), name)?;
            for earlier in [GroupResource::any_in_group(&gr.group), GroupResource::any()] {
                if earlier != gr && parsed.by_resource.contains_key(&earlier) {
                    return Err(format!(
                        "{at}.resources[{j}]: {name:?} is masked by the earlier rule {:?}",
                        earlier.spelled()
                    ));
                }
            }
            parsed
                .by_resource
                .entry(gr)
                .or_default()
                .extend(providers.iter().cloned());
        }
        parsed.all.extend(providers);
    }
    Ok(parsed)
}

fn resource(at: &str, name: &str) -> Result<GroupResource, String> {
    if name.is_empty() {
        return Err(format!("{at}: empty resource name"));
    }
    if name.to_lowercase() != name {
        return Err(format!(
            "{at}: resource {name:?} should not contain capital letters"
        ));
    }
    if name == "*" {
        return Err(format!(
            "{at}: resource \"*\": use \"*.\" for every core resource or \"*.*\" for all resources"
        ));
    }
    let gr = GroupResource::parse(name);
    if gr.group == "*" && gr.resource != "*" {
        return Err(format!(
            "{at}: resource {name:?}: encrypting the same resource across groups is not supported"
        ));
    }
    Ok(gr)
}

fn provider(at: &str, entry: &BTreeMap<String, Value>) -> Result<Provider, String> {
    let mut names = entry.keys();
    let (Some(name), None) = (names.next(), names.next()) else {
        let found: Vec<&str> = entry.keys().map(String::as_str).collect();
        return Err(if found.is_empty() {
            format!("{at}: empty provider (expected one of {PROVIDER_NAMES})")
        } else {
            format!(
                "{at}: more than one provider in one entry ({}); list each separately",
                found.join(", ")
            )
        });
    };
    let body = entry.get(name).cloned().unwrap_or(Value::Null);
    let cipher = match name.as_str() {
        "aescbc" => Cipher::AesCbc,
        "aesgcm" => Cipher::AesGcm,
        "secretbox" => Cipher::Secretbox,
        "identity" => return Ok(Provider::Identity),
        "kms" => return kms(&format!("{at}.kms"), body),
        other => {
            return Err(format!(
                "{at}: unknown provider {other:?} (expected one of {PROVIDER_NAMES})"
            ));
        }
    };
    let at = format!("{at}.{}", cipher.name());
    let config: KeysConfig = serde_yaml_ng::from_value(body)
        .map_err(|e| one_line(&format!("{at}: not a key list: {}", redact(&e.to_string()))))?;
    if config.keys.is_empty() {
        return Err(format!("{at}.keys: at least one key is required"));
    }
    let keys = config
        .keys
        .into_iter()
        .enumerate()
        .map(|(k, key)| keyed(&format!("{at}.keys[{k}]"), cipher, key))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Provider::Keyed { cipher, keys })
}

fn keyed(at: &str, cipher: Cipher, key: KeyConfig) -> Result<Key, String> {
    if key.name.is_empty() {
        return Err(format!("{at}.name: a key needs a name"));
    }
    let at = format!("{at} ({:?})", key.name);
    let secret = match key.secret {
        Value::String(s) if !s.is_empty() => s,
        Value::Null => return Err(format!("{at}: no secret")),
        Value::String(_) => return Err(format!("{at}: empty secret")),
        _ => return Err(format!("{at}: the secret must be a base64 string")),
    };
    // Go's decoder skips line breaks; nothing else.
    let compact: String = secret
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let bytes = GO_STD_BASE64
        .decode(compact.as_bytes())
        .map_err(|_| format!("{at}: the secret is not valid standard base64"))?;
    let (sizes, spelled) = cipher.key_sizes();
    if !sizes.contains(&bytes.len()) {
        return Err(format!(
            "{at}: {} keys must be {spelled} bytes; this one is {} bytes",
            cipher.name(),
            bytes.len()
        ));
    }
    Ok(Key {
        name: key.name,
        secret: bytes,
    })
}

fn kms(at: &str, body: Value) -> Result<Provider, String> {
    let config: KmsConfig = serde_yaml_ng::from_value(body).map_err(|e| {
        one_line(&format!(
            "{at}: not a KMS provider: {}",
            redact(&e.to_string())
        ))
    })?;
    if config.name.is_empty() {
        return Err(format!("{at}.name: a KMS provider needs a name"));
    }
    // The api-server defaults a missing apiVersion to v1.
    let version = config.api_version.unwrap_or_else(|| "v1".to_string());
    if version != "v1" && version != "v2" {
        return Err(format!(
            "{at}.apiVersion: {version:?}: only v1 and v2 are supported"
        ));
    }
    Ok(Provider::Kms {
        version,
        name: config.name,
    })
}

/// Blanks the quoted spans of a serde message: serde quotes the offending value (`invalid type:
/// string "…", expected …`), and in this file that value may be a key.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' || c == '`' {
            out.push('…');
            let mut escaped = false;
            for inner in chars.by_ref() {
                if inner == c && !escaped {
                    out.push(c);
                    break;
                }
                escaped = inner == '\\' && !escaped;
            }
        }
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";

    fn parse_body(body: &str) -> Result<Parsed, String> {
        parse(&format!("{HEAD}{body}"))
    }

    #[test]
    fn group_resource_splits_at_the_first_dot() {
        let gr = |t| {
            let g = GroupResource::parse(t);
            (g.group, g.resource)
        };
        assert_eq!(gr("secrets"), ("".into(), "secrets".into()));
        assert_eq!(
            gr("deployments.apps"),
            ("apps".into(), "deployments".into())
        );
        assert_eq!(gr("*."), ("".into(), "*".into()));
        assert_eq!(gr("*.*"), ("*".into(), "*".into()));
        assert_eq!(
            gr("pandas.awesome.bears.example"),
            ("awesome.bears.example".into(), "pandas".into())
        );
    }

    #[test]
    fn reads_every_provider_kind() {
        let parsed = parse_body(
            "resources:
- resources: [secrets, configmaps]
  providers:
  - aescbc: {keys: [{name: a, secret: MTIzNDU2Nzg5MDEyMzQ1Ng==}]}
  - aesgcm: {keys: [{name: g, secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0}]}
  - secretbox: {keys: [{name: s, secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=}]}
  - kms: {apiVersion: v2, name: vault, endpoint: unix:///tmp/kms.sock}
  - kms: {name: old, endpoint: unix:///tmp/kms1.sock}
  - identity: {}
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.all.len(), 6);
        let secrets = &parsed.by_resource[&GroupResource::parse("secrets")];
        assert!(matches!(
            &secrets[0],
            Provider::Keyed { cipher: Cipher::AesCbc, keys } if keys[0].secret == b"1234567890123456"
        ));
        assert!(matches!(&secrets[2], Provider::Keyed { keys, .. } if keys[0].secret.len() == 32));
        assert!(
            matches!(&secrets[3], Provider::Kms { version, name } if version == "v2" && name == "vault")
        );
        assert!(matches!(&secrets[4], Provider::Kms { version, .. } if version == "v1"));
        assert!(matches!(&secrets[5], Provider::Identity));
    }

    #[test]
    fn rejects_what_the_api_server_rejects() {
        let cases = [
            ("", "resources: at least one entry"),
            ("resources: []", "resources: at least one entry"),
            (
                "resources: [{resources: [secrets], providers: [{aesgbc: {}}]}]",
                "resources[0].providers[0]: unknown provider \"aesgbc\"",
            ),
            (
                "resources: [{resources: [secrets], providers: [{identity: {}, aescbc: {}}]}]",
                "more than one provider in one entry (aescbc, identity)",
            ),
            (
                "resources: [{resources: [secrets], providers: [{aescbc: {keys: []}}]}]",
                "resources[0].providers[0].aescbc.keys: at least one key",
            ),
            (
                "resources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: k, secret: 'a b'}]}}]}]",
                "aescbc.keys[0] (\"k\"): the secret is not valid standard base64",
            ),
            (
                // 31 bytes.
                "resources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: k, secret: MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMQ==}]}}]}]",
                "secretbox keys must be 32 bytes; this one is 31 bytes",
            ),
            (
                "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{secret: MTIzNDU2Nzg5MDEyMzQ1Ng==}]}}]}]",
                "aesgcm.keys[0].name: a key needs a name",
            ),
            (
                "resources: [{resources: [secrets], providers: [{aesgcm: {keys: [{name: k, secret: 1234}]}}]}]",
                "the secret must be a base64 string",
            ),
            (
                "resources: [{resources: [Secrets], providers: [{identity: {}}]}]",
                "should not contain capital letters",
            ),
            (
                "resources: [{resources: ['*'], providers: [{identity: {}}]}]",
                "use \"*.\" for every core resource",
            ),
            (
                "resources: [{resources: ['secrets.*'], providers: [{identity: {}}]}]",
                "across groups",
            ),
            (
                "resources: [{resources: ['*.*'], providers: [{identity: {}}]}, {resources: [secrets], providers: [{identity: {}}]}]",
                "resources[1].resources[0]: \"secrets\" is masked by the earlier rule \"*.*\"",
            ),
            (
                "resources: [{resources: ['*.apps'], providers: [{identity: {}}]}, {resources: [deployments.apps], providers: [{identity: {}}]}]",
                "masked by the earlier rule \"*.apps\"",
            ),
            (
                "resources: [{resources: [secrets], providers: [{kms: {apiVersion: v3, name: k}}]}]",
                "only v1 and v2",
            ),
        ];
        for (body, want) in cases {
            let err = parse_body(body).err().unwrap_or_default();
            assert!(err.contains(want), "{body}\n  got: {err}\n want: {want}");
            assert!(!err.contains('\n'), "{err}");
        }
        let err = parse("kind: EncryptionConfiguration\nresources: []").err();
        assert!(err.unwrap_or_default().contains("expected apiVersion"));
        assert!(parse("  \n").err().unwrap_or_default().contains("empty"));
    }

    #[test]
    fn accepts_go_style_base64() {
        // Line breaks are skipped and non-zero trailing bits tolerated, as Go's StdEncoding does.
        // "MTIzNDU2Nzg5MDEyMzQ1Ng==" is "1234567890123456"; "Nh==" differs from "Ng==" only in
        // the unused low bits of the last character.
        let parsed = parse_body(
            "resources: [{resources: [secrets], providers: [{aescbc: {keys: [{name: k, secret: \"MTIzNDU2\\nNzg5MDEyMzQ1Nh==\"}]}}]}]",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            &parsed.all[0],
            Provider::Keyed { keys, .. } if keys[0].secret == b"1234567890123456"
        ));
    }

    #[test]
    fn misplaced_secrets_are_not_echoed() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        for body in [
            format!(
                "resources: [{{resources: [secrets], providers: [{{aescbc: {{keys: [{key}]}}}}]}}]"
            ),
            format!("resources: [{{resources: [secrets], providers: [\"{key}\"]}}]"),
            format!("resources: [{{resources: [secrets], providers: [{{kms: \"{key}\"}}]}}]"),
            "resources: [{resources: [secrets], providers: [{aescbc: {keys: 12345}}]}]".to_string(),
        ] {
            let err = parse_body(&body).err().unwrap_or_default();
            assert!(
                !err.is_empty() && !err.contains("AAECAwQF") && !err.contains("12345"),
                "{err}"
            );
        }
        assert_eq!(redact(r#"a "x\"y" b `z` c"#), "a \"…\" b `…` c");
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let key = Key {
            name: "k".into(),
            secret: b"very secret bytes".to_vec(),
        };
        let shown = format!("{key:?}");
        assert!(
            !shown.contains("secret bytes") && shown.contains("<17 bytes>"),
            "{shown}"
        );
    }
}
