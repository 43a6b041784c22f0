//! Service-account JWTs (RFC 7519, JWS compact form, RFC 7515) signed and verified with
//! `ring`: ES256 for the EC P-256 keys `kubeboot render` generates, RS256 for RSA keys, as
//! kube-apiserver's `--service-account-signing-key-file` and `--service-account-key-file`
//! accept. Written by hand on purpose: the maintained JWT crates either bring their own
//! crypto stack (`jsonwebtoken` pulls `aws-lc-rs` or `rust_crypto` since v10) or are
//! unmaintained, and the compact form is three base64url segments and one signature — small
//! enough to keep here with tests. Only what the double needs: no `none`, no HMAC, no
//! JWKs, no leeway on `exp`.
//!
//! Like the real server, the header carries a `kid`: base64url(SHA-256(the key's PKIX
//! DER)) (`keyIDFromPublicKey` in `pkg/serviceaccount/jwt.go`).

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use serde_json::{Value, json};

/// Why a token or key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Key(String),
    Malformed(&'static str),
    Algorithm(String),
    Signature,
    Expired,
    NotYetValid,
}

impl std::fmt::Display for JwtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtError::Key(what) => f.write_str(what),
            JwtError::Malformed(what) => write!(f, "malformed token: {what}"),
            JwtError::Algorithm(alg) => write!(f, "unsupported algorithm {alg:?}"),
            JwtError::Signature => f.write_str("invalid signature"),
            JwtError::Expired => f.write_str("token has expired"),
            JwtError::NotYetValid => f.write_str("token is not valid yet"),
        }
    }
}

impl std::error::Error for JwtError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key that signs tokens.
pub struct SigningKey {
    signer: Signer,
    kid: String,
}

/// A public key that verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    alg: Alg,
    /// The uncompressed EC point or the PKCS#1 RSAPublicKey DER.
    public: Vec<u8>,
}

fn key_err(what: impl std::fmt::Display) -> JwtError {
    JwtError::Key(what.to_string())
}

/// DER length octets.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=0x7f => vec![n as u8],
        0x80..=0xff => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(body.len()));
    out.extend_from_slice(body);
    out
}

/// The PKIX SubjectPublicKeyInfo DER of a public key.
fn spki(alg: Alg, public: &[u8]) -> Vec<u8> {
    let algorithm: &[u8] = match alg {
        // id-ecPublicKey, prime256v1
        Alg::Es256 => {
            b"\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
        }
        // rsaEncryption, NULL
        Alg::Rs256 => b"\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00",
    };
    let mut bits = vec![0u8];
    bits.extend_from_slice(public);
    let mut body = algorithm.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

fn kid(alg: Alg, public: &[u8]) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        &spki(alg, public),
    ))
}

fn pem_sections(pem: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, JwtError> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| key_err(format!("PEM: {e:?}")))
}

impl SigningKey {
    /// The first private key in a PEM file.
    pub fn from_file(path: &Path) -> Result<SigningKey, JwtError> {
        let pem = std::fs::read(path).map_err(|e| key_err(format!("{}: {e}", path.display())))?;
        Self::from_pem(&pem).map_err(|e| key_err(format!("{}: {e}", path.display())))
    }

    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, JwtError> {
        for (kind, der) in pem_sections(pem)? {
            if let Some(signer) = signer(kind, &der)? {
                let v = verifier(&signer);
                return Ok(SigningKey {
                    kid: kid(v.alg, &v.public),
                    signer,
                });
            }
        }
        Err(key_err("no PKCS#8 or RSA private key"))
    }

    /// The key that verifies this key's signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        verifier(&self.signer)
    }

    /// A signed compact JWS of `claims`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let alg = self.verifying_key().alg;
        let header = json!({"alg": alg.name(), "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| key_err("ECDSA signing failed"))?
                .as_ref()
                .to_vec(),
            Signer::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| key_err("RSA signing failed"))?;
                sig
            }
        };
        Ok(format!("{input}.{}", B64.encode(sig)))
    }
}

fn signer(kind: SectionKind, der: &[u8]) -> Result<Option<Signer>, JwtError> {
    let rng = SystemRandom::new();
    Ok(match kind {
        SectionKind::PrivateKey => {
            let ec = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            match EcdsaKeyPair::from_pkcs8(ec, der, &rng) {
                Ok(k) => Some(Signer::Ec(k)),
                Err(_) => Some(Signer::Rsa(
                    RsaKeyPair::from_pkcs8(der).map_err(|e| key_err(format!("PKCS#8 key: {e}")))?,
                )),
            }
        }
        SectionKind::RsaPrivateKey => Some(Signer::Rsa(
            RsaKeyPair::from_der(der).map_err(|e| key_err(format!("RSA key: {e}")))?,
        )),
        SectionKind::EcPrivateKey => {
            return Err(key_err("SEC1 EC keys are not supported; use PKCS#8"));
        }
        _ => None,
    })
}

fn verifier(s: &Signer) -> VerifyingKey {
    match s {
        Signer::Ec(k) => VerifyingKey {
            alg: Alg::Es256,
            public: k.public_key().as_ref().to_vec(),
        },
        Signer::Rsa(k) => VerifyingKey {
            alg: Alg::Rs256,
            public: k.public_key().as_ref().to_vec(),
        },
    }
}

fn from_spki(der: &[u8]) -> Result<VerifyingKey, JwtError> {
    use x509_parser::prelude::FromDer;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
        .map_err(|e| key_err(format!("public key: {e}")))?;
    let oid = &info.algorithm.algorithm;
    let alg = if *oid == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
        Alg::Es256
    } else if *oid == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        Alg::Rs256
    } else {
        return Err(key_err(format!("unsupported public key algorithm {oid}")));
    };
    Ok(VerifyingKey {
        alg,
        public: info.subject_public_key.data.to_vec(),
    })
}

impl VerifyingKey {
    /// Every key in a PEM file: public keys, certificates' keys and private keys' public halves.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<VerifyingKey>, JwtError> {
        let mut out = Vec::new();
        for (kind, der) in pem_sections(pem)? {
            match kind {
                SectionKind::PublicKey => out.push(from_spki(&der)?),
                SectionKind::Certificate => {
                    let (_, cert) = x509_parser::parse_x509_certificate(&der)
                        .map_err(|e| key_err(format!("certificate: {e}")))?;
                    out.push(from_spki(cert.public_key().raw)?);
                }
                k => {
                    if let Some(s) = signer(k, &der)? {
                        out.push(verifier(&s));
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(key_err("no public or private key"));
        }
        Ok(out)
    }

    pub fn from_file(path: &Path) -> Result<Vec<VerifyingKey>, JwtError> {
        let pem = std::fs::read(path).map_err(|e| key_err(format!("{}: {e}", path.display())))?;
        Self::from_pem(&pem).map_err(|e| key_err(format!("{}: {e}", path.display())))
    }

    fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.alg {
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &self.public)
            .verify(input, sig)
            .is_ok()
    }
}

/// The claims of a token signed by one of `keys` that is valid at `now` (Unix seconds).
/// Issuer and audience are the caller's to check.
pub fn verify(token: &str, keys: &[VerifyingKey], now: i64) -> Result<Value, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("want three dot-separated parts"));
    };
    let decode = |p: &str| {
        B64.decode(p)
            .map_err(|_| JwtError::Malformed("bad base64url"))
    };
    let json = |b: Vec<u8>| {
        serde_json::from_slice::<Value>(&b).map_err(|_| JwtError::Malformed("bad JSON"))
    };
    let header = json(decode(h)?)?;
    let alg = match header["alg"].as_str() {
        Some("ES256") => Alg::Es256,
        Some("RS256") => Alg::Rs256,
        other => return Err(JwtError::Algorithm(other.unwrap_or("").to_string())),
    };
    let sig = decode(s)?;
    let input = token
        .as_bytes()
        .get(..h.len() + 1 + c.len())
        .ok_or(JwtError::Malformed("truncated"))?;
    if !keys.iter().any(|k| k.alg == alg && k.verify(input, &sig)) {
        return Err(JwtError::Signature);
    }
    let claims = json(decode(c)?)?;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err(JwtError::Expired);
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + 60) {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_pem() -> String {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    }

    fn claims(exp: i64) -> Value {
        json!({"iss": "https://k", "sub": "system:serviceaccount:a:b", "exp": exp, "nbf": 0})
    }

    #[test]
    fn es256_round_trip_from_private_and_public_pem() {
        let kp = rcgen::KeyPair::generate().unwrap();
        let key = SigningKey::from_pem(kp.serialize_pem().as_bytes()).unwrap();
        let token = key.sign(&claims(2_000)).unwrap();
        let public = VerifyingKey::from_pem(kp.public_key_pem().as_bytes()).unwrap();
        assert_eq!(public, vec![key.verifying_key()]);
        assert_eq!(
            verify(&token, &public, 1_000).unwrap()["sub"],
            "system:serviceaccount:a:b"
        );
        let header: Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"].as_str().unwrap().len(), 43);
    }

    /// ring and rcgen cannot generate RSA keys, so openssl makes one (skipped without it).
    #[test]
    fn rs256_round_trip() {
        let run = |args: &[&str], input: Option<&[u8]>| {
            use std::io::Write;
            let mut child = std::process::Command::new("openssl")
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            child
                .stdin
                .take()?
                .write_all(input.unwrap_or_default())
                .ok()?;
            let out = child.wait_with_output().ok()?;
            out.status.success().then_some(out.stdout)
        };
        let Some(private) = run(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            None,
        ) else {
            println!("SKIPPED: no openssl");
            return;
        };
        let public = run(&["pkey", "-pubout"], Some(&private)).unwrap();
        let key = SigningKey::from_pem(&private).unwrap();
        let token = key.sign(&claims(2_000)).unwrap();
        let keys = VerifyingKey::from_pem(&public).unwrap();
        assert_eq!(keys, vec![key.verifying_key()]);
        assert!(verify(&token, &keys, 1_000).is_ok());
        let header: Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_fail() {
        let key = SigningKey::from_pem(ec_pem().as_bytes()).unwrap();
        let keys = [key.verifying_key()];
        let token = key.sign(&claims(2_000)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = B64.encode(claims(9_999).to_string());
        assert_eq!(
            verify(&parts.join("."), &keys, 1_000),
            Err(JwtError::Signature)
        );
        assert_eq!(verify(&token, &keys, 2_000), Err(JwtError::Expired));
        let other = SigningKey::from_pem(ec_pem().as_bytes()).unwrap();
        assert_eq!(
            verify(&token, &[other.verifying_key()], 1_000),
            Err(JwtError::Signature)
        );
        assert!(matches!(
            verify("a.b", &keys, 0),
            Err(JwtError::Malformed(_))
        ));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(
            verify(&none, &keys, 0),
            Err(JwtError::Algorithm("none".into()))
        );
    }

    #[test]
    fn kid_matches_the_pkix_der() {
        let kp = rcgen::KeyPair::generate().unwrap();
        let key = SigningKey::from_pem(kp.serialize_pem().as_bytes()).unwrap();
        let v = key.verifying_key();
        let der = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(
            kp.public_key_pem().as_bytes(),
        )
        .unwrap();
        assert_eq!(spki(v.alg, &v.public), der.as_ref());
    }
}
