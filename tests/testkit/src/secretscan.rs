//! The secrets-in-logs scan (docs/testing.md, "No secret in any log"): the secrets a
//! test or drill planted are read back from where they were planted (the cluster dir,
//! the fixtures), and every log line is searched for them. Used by `secret-scan`, which
//! `scripts/drill` runs before it removes a drill's dir and `scripts/test` runs on the
//! output of the cargo tests.
//!
//! What counts as a secret, found in any text file under the secret roots:
//! - the body of a PEM private key block (each body line is a needle, so a key logged
//!   one line at a time, or inside JSON with `\n` escapes, is still found), also inside
//!   base64 (a kubeconfig's `client-key-data`, a Secret's `data`);
//! - a bearer token: the content of a file named `token`, a `token:` field, a JWT;
//! - an encryption key: a `secret:` field (EncryptionConfiguration);
//! - an age identity (`AGE-SECRET-KEY-1…`);
//! - any literal given on the command line.
//!
//! A log line leaks when it holds any of them, or the header of a PEM private key block
//! or of an age identity, whatever the key. Reports name the leaking log line and where
//! the secret came from, never the secret.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use base64::Engine;

/// Shorter strings are not secrets worth a needle (and would match by chance).
const MIN_NEEDLE: usize = 8;
/// A base64 word shorter than this cannot hold a PEM private key.
const MIN_BASE64_PEM: usize = 60;
/// Files larger than this are not read for secrets (etcd's db, binaries).
const MAX_SECRET_FILE: u64 = 4 << 20;

/// Shapes that are a leak whatever the key.
const GENERIC: [(&str, &str); 2] = [
    ("PRIVATE KEY-----", "a PEM private key block"),
    ("AGE-SECRET-KEY-1", "an age identity"),
];

/// A value that must not appear in a log, and a description of where it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Secret {
    pub what: String,
    pub needle: String,
}

/// One log line that holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub file: PathBuf,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

fn secret(what: String, needle: &str) -> Option<Secret> {
    let needle = needle.trim();
    (needle.len() >= MIN_NEEDLE).then(|| Secret {
        what,
        needle: needle.to_string(),
    })
}

/// The value of a `name: value` or `"name": "value"` field on `line`.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let t = line.trim_start().trim_start_matches("- ");
    let rest = t
        .strip_prefix(name)
        .or_else(|| t.strip_prefix(&format!("\"{name}\"")))?;
    let value = rest.trim_start().strip_prefix(':')?.trim();
    Some(
        value
            .trim_end_matches(',')
            .trim_matches(|c| c == '"' || c == '\''),
    )
}

/// The secrets in one file's `text`; `origin` names the file in reports.
pub fn secrets_in_text(origin: &str, text: &str) -> Vec<Secret> {
    let mut out = Vec::new();
    let text_unescaped = text.replace("\\n", "\n");
    let mut in_key = false;
    for line in text_unescaped.lines() {
        let l = line.trim().trim_matches('"');
        // A block may start inside a field (`key: "-----BEGIN …` with `\n` escapes).
        if l.contains("-----BEGIN ") && l.contains("PRIVATE KEY-----") {
            in_key = true;
        } else if l.contains("-----END ") {
            in_key = false;
        } else if in_key {
            out.extend(secret(format!("a private key in {origin}"), l));
        }
        for name in ["token", "secret"] {
            if let Some(v) = field(line, name) {
                out.extend(secret(format!("the {name} field in {origin}"), v));
            }
        }
    }
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=-_.".contains(c))) {
        if word.starts_with("eyJ") && word.matches('.').count() == 2 {
            out.extend(secret(format!("a JWT in {origin}"), word));
        }
        if word.starts_with("AGE-SECRET-KEY-1") {
            out.extend(secret(format!("an age identity in {origin}"), word));
        }
        if word.len() >= MIN_BASE64_PEM
            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(word)
            && let Ok(decoded) = String::from_utf8(bytes)
            && decoded.contains("PRIVATE KEY-----")
        {
            let inner = secrets_in_text(&format!("{origin} (base64)"), &decoded);
            if !inner.is_empty() {
                out.extend(secret(
                    format!("a base64 private key in {origin}"),
                    word.get(..64).unwrap_or(word),
                ));
            }
            out.extend(inner);
        }
    }
    out
}

/// Every file under `root` (or `root` itself), sorted.
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Whether `path` is a log: a `*.log` file or any file under a `logs` dir.
pub fn is_log(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
        || path.components().any(|c| c.as_os_str() == "logs")
}

/// The secrets in the text files under `roots`, logs excepted, plus `literals`.
pub fn collect(roots: &[PathBuf], literals: &[String]) -> Vec<Secret> {
    let mut out: BTreeSet<Secret> = literals
        .iter()
        .filter_map(|l| secret("a value given with --literal".into(), l))
        .collect();
    for file in roots.iter().flat_map(|r| walk(r)) {
        if is_log(&file) || std::fs::metadata(&file).map_or(true, |m| m.len() > MAX_SECRET_FILE) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // binary
        };
        let origin = file.display().to_string();
        if file.file_name().is_some_and(|n| n == "token") {
            out.extend(secret(format!("the token in {origin}"), &text));
        }
        out.extend(secrets_in_text(&origin, &text));
    }
    out.into_iter().collect()
}

/// The leaks in `text` (the content of log `file`).
pub fn scan_text(secrets: &[Secret], file: &Path, text: &str) -> Vec<Leak> {
    let needles: Vec<&str> = secrets
        .iter()
        .map(|s| s.needle.as_str())
        .chain(GENERIC.iter().map(|g| g.0))
        .collect();
    let what = |i: usize| match secrets.get(i) {
        Some(s) => s.what.clone(),
        None => GENERIC
            .get(i - secrets.len())
            .map_or_else(String::new, |g| g.1.to_string()),
    };
    let Ok(ac) = AhoCorasick::new(&needles) else {
        return vec![Leak {
            file: file.to_path_buf(),
            line: 0,
            what: "the needles could not be compiled".into(),
        }];
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let found: BTreeSet<usize> = ac
            .find_overlapping_iter(line)
            .map(|m| m.pattern().as_usize())
            .collect();
        for i in found {
            out.push(Leak {
                file: file.to_path_buf(),
                line: n + 1,
                what: what(i),
            });
        }
    }
    out
}

/// The leaks in every log under `logs`; also the number of log files read.
pub fn scan(secrets: &[Secret], logs: &[PathBuf]) -> (Vec<Leak>, usize) {
    let mut leaks = Vec::new();
    let mut files = 0;
    for file in logs.iter().flat_map(|r| walk(r)) {
        // A root given as a file is a log whatever its name.
        if !is_log(&file) && !logs.contains(&file) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        files += 1;
        leaks.extend(scan_text(secrets, &file, &String::from_utf8_lossy(&bytes)));
    }
    (leaks, files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgq1w2e3r4t5y6u7i8\nhRANCAAT0aVb7Y2kCfjwXJ9nF\n-----END PRIVATE KEY-----\n";

    fn leaks(secrets: &[Secret], log: &str) -> Vec<Leak> {
        scan_text(secrets, Path::new("x.log"), log)
    }

    #[test]
    fn a_deliberately_leaked_key_line_is_found_and_a_clean_log_passes() {
        let secrets = secrets_in_text("ca.key", KEY);
        assert_eq!(secrets.len(), 2, "{secrets:?}");
        assert!(leaks(&secrets, "INFO started\nINFO wrote ca.crt\n").is_empty());
        let leaked = "INFO ok\nDEBUG key=hRANCAAT0aVb7Y2kCfjwXJ9nF trailing\n";
        let found = leaks(&secrets, leaked);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
        assert_eq!(found[0].what, "a private key in ca.key");
        assert!(
            !found[0].to_string().contains("hRANCAAT0aVb7Y2kCfjwXJ9nF"),
            "never print the secret"
        );
    }

    #[test]
    fn a_key_in_json_escapes_or_base64_is_a_secret_and_a_pem_header_always_leaks() {
        let json = format!("{{\"key\": {:?}}}", KEY);
        let from_json = secrets_in_text("s.json", &json);
        assert!(
            from_json
                .iter()
                .any(|s| s.needle == "hRANCAAT0aVb7Y2kCfjwXJ9nF")
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(KEY);
        let kubeconfig = format!("users:\n- name: a\n  user:\n    client-key-data: {b64}\n");
        let from_b64 = secrets_in_text("kubeconfig", &kubeconfig);
        assert!(
            from_b64
                .iter()
                .any(|s| s.needle == "hRANCAAT0aVb7Y2kCfjwXJ9nF")
        );
        assert!(!leaks(&from_b64, &format!("dumped {}", &b64[..70])).is_empty());
        assert_eq!(
            leaks(&[], "x\n-----BEGIN EC PRIVATE KEY-----\n")[0].what,
            "a PEM private key block"
        );
    }

    #[test]
    fn tokens_and_encryption_keys_are_secrets() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let kc = format!("    token: {jwt}\n");
        let s = secrets_in_text("kc", &kc);
        assert!(s.iter().any(|s| s.needle == jwt));
        let enc = "        - name: key1\n          secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
        let s = secrets_in_text("enc.yaml", enc);
        assert_eq!(s.len(), 1);
        assert_eq!(
            leaks(
                &s,
                "decrypting with AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            )
            .len(),
            1
        );
        // A short value is no needle: "secret: true" must not make every "true" a leak.
        assert!(secrets_in_text("x", "secret: true\ntoken: \"\"\n").is_empty());
    }

    #[test]
    fn collect_reads_planted_files_but_not_logs_and_scan_reads_only_logs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("pods/p/volumes")).unwrap();
        std::fs::create_dir_all(d.join("logs")).unwrap();
        std::fs::write(d.join("pods/p/volumes/token"), "plain-opaque-token-value\n").unwrap();
        std::fs::write(d.join("ca.key"), KEY).unwrap();
        std::fs::write(d.join("logs/start.log"), "started\n").unwrap();
        std::fs::write(
            d.join("pods/p/c.log"),
            "using token plain-opaque-token-value\n",
        )
        .unwrap();
        std::fs::write(
            d.join("notes.txt"),
            "plain-opaque-token-value in a file that is no log\n",
        )
        .unwrap();
        let secrets = collect(&[d.to_path_buf()], &["literal-planted-value".into()]);
        assert!(
            secrets
                .iter()
                .any(|s| s.needle == "plain-opaque-token-value")
        );
        assert!(secrets.iter().any(|s| s.needle == "literal-planted-value"));
        let (found, files) = scan(&secrets, &[d.to_path_buf()]);
        assert_eq!(files, 2);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].file.ends_with("pods/p/c.log"));
        assert!(found[0].what.contains("the token in"));
    }
}
