//! The live-etcd source: paged prefix reads through etcd-client, all pinned to one
//! revision so a recovery sees one consistent cluster state, over TLS when asked.
//!
//! Errors name the endpoint and carry the whole cause chain: bootkube surfaced TLS
//! failures as a bare "context deadline exceeded" (bootkube #997), which sent
//! operators chasing network problems that were certificate problems.

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};

use super::{SourceError, Stored};
use crate::model::{SourceInfo, SourceKind};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
    /// Keys per range request; bounded so a huge namespace never needs one huge reply.
    pub page_size: i64,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            page_size: 500,
        }
    }

    fn endpoint_label(&self) -> String {
        self.endpoints.join(",")
    }

    fn err(&self, reason: impl Into<String>) -> SourceError {
        SourceError::Etcd {
            endpoint: self.endpoint_label(),
            reason: reason.into(),
        }
    }
}

/// Reads every object under `prefixes` at one revision.
pub async fn read(
    cfg: &EtcdConfig,
    prefixes: &[String],
) -> Result<(Vec<Stored>, SourceInfo), SourceError> {
    let mut client = connect(cfg).await?;
    let mut revision = None;
    let mut stored = Vec::new();
    for prefix in prefixes {
        read_prefix(cfg, &mut client, prefix, &mut revision, &mut stored).await?;
    }
    let info = SourceInfo {
        kind: SourceKind::Etcd,
        location: cfg.endpoint_label(),
        revision,
        integrity: None,
        sha256: None,
        size: None,
        read_at: super::now_rfc3339(),
    };
    Ok((stored, info))
}

pub async fn connect(cfg: &EtcdConfig) -> Result<Client, SourceError> {
    if cfg.endpoints.is_empty() {
        return Err(cfg.err("no endpoints given"));
    }
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(cfg.dial_timeout)
        .with_timeout(cfg.request_timeout);
    let uses_tls = cfg.endpoints.iter().any(|e| e.starts_with("https://"));
    if uses_tls || cfg.ca_file.is_some() || cfg.cert_file.is_some() {
        opts = opts.with_tls(tls_options(cfg)?);
    }
    let connecting = Client::connect(cfg.endpoints.clone(), Some(opts));
    match tokio::time::timeout(cfg.dial_timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(cfg.err(format!("cannot connect: {}", super::error_chain(&e)))),
        Err(_) => Err(cfg.err(format!(
            "no connection within the dial timeout of {:?}",
            cfg.dial_timeout
        ))),
    }
}

fn tls_options(cfg: &EtcdConfig) -> Result<TlsOptions, SourceError> {
    let mut tls = TlsOptions::new();
    if let Some(ca) = &cfg.ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read_file(ca)?));
    }
    match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read_file(cert)?, read_file(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(
                cfg.err("--etcd-certfile and --etcd-keyfile must be given together for client TLS")
            );
        }
    }
    Ok(tls)
}

fn read_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    std::fs::read(path).map_err(|e| SourceError::Config {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

async fn read_prefix(
    cfg: &EtcdConfig,
    client: &mut Client,
    prefix: &str,
    revision: &mut Option<i64>,
    out: &mut Vec<Stored>,
) -> Result<(), SourceError> {
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    loop {
        let mut opts = GetOptions::new()
            .with_range(end.clone())
            .with_limit(cfg.page_size);
        if let Some(rev) = *revision {
            opts = opts.with_revision(rev);
        }
        let request = client.get(from.clone(), Some(opts));
        let mut resp = match tokio::time::timeout(cfg.request_timeout, request).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                return Err(cfg.err(format!("reading {prefix}: {}", super::error_chain(&e))));
            }
            Err(_) => {
                return Err(cfg.err(format!(
                    "reading {prefix}: no answer within {:?}",
                    cfg.request_timeout
                )));
            }
        };
        if revision.is_none() {
            *revision = resp.header().map(|h| h.revision());
        }
        let more = resp.more();
        let kvs = resp.take_kvs();
        check_page(&from, &end, kvs.iter().map(|kv| kv.key()))
            .map_err(|what| cfg.err(format!("reading {prefix}: {what}")))?;
        let Some(last) = kvs.last() else { break };
        from = last.key().to_vec();
        from.push(0);
        for kv in kvs {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let mod_revision = kv.mod_revision();
            let (_, value) = kv.into_key_value();
            out.push(Stored {
                key,
                value,
                mod_revision,
            });
        }
        if !more {
            break;
        }
    }
    Ok(())
}

/// A page must hold keys in `[from, end)` in strictly increasing order, so the next page
/// starts past this one: an etcd that answered otherwise (with `more` set) would make the
/// paging loop forever or read keys twice.
fn check_page<'a>(
    from: &[u8],
    end: &[u8],
    keys: impl Iterator<Item = &'a [u8]>,
) -> Result<(), String> {
    let mut previous: Option<&[u8]> = None;
    for key in keys {
        if key < from || key >= end {
            return Err(format!(
                "etcd returned key {:?} outside the requested range (paging from {:?})",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(from)
            ));
        }
        if previous.is_some_and(|p| key <= p) {
            return Err(format!(
                "etcd returned key {:?} out of order while paging",
                String::from_utf8_lossy(key)
            ));
        }
        previous = Some(key);
    }
    Ok(())
}

/// The smallest key greater than every key starting with `prefix` (etcd's range end
/// for a prefix): the prefix with its last byte below 0xff incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_must_advance() {
        let keys = |ks: &[&'static str]| ks.iter().map(|k| k.as_bytes()).collect::<Vec<_>>();
        let ok = keys(&["/r/a", "/r/b"]);
        assert!(check_page(b"/r/", b"/r0", ok.into_iter()).is_ok());
        // A page that repeats the last page's key (from = last + \0) would loop forever.
        let again = keys(&["/r/b"]);
        assert!(check_page(b"/r/b\0", b"/r0", again.into_iter()).is_err());
        let unordered = keys(&["/r/c", "/r/b"]);
        let err = check_page(b"/r/", b"/r0", unordered.into_iter()).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        let duplicate = keys(&["/r/c", "/r/c"]);
        assert!(check_page(b"/r/", b"/r0", duplicate.into_iter()).is_err());
        let outside = keys(&["/s/a"]);
        assert!(check_page(b"/r/", b"/r0", outside.into_iter()).is_err());
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(
            prefix_end(b"/registry/secrets/kube-system/"),
            b"/registry/secrets/kube-system0"
        );
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
