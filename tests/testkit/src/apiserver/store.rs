//! Objects in real etcd, exactly as kube-apiserver keeps them: keys from
//! `kubeboot::registry`, values in the codec's `k8s\0` protobuf encoding, no
//! `resourceVersion` inside the value (it is the key's mod revision), and every
//! write a transaction guarded by the revision it was computed from, which is what
//! gives clients real optimistic concurrency.
//!
//! The etcd connection is made lazily and retried, because a kubelet starts the
//! api-server and etcd static pods together and the real api-server waits for etcd.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions, WatchStream};
use kubeboot::encryption::EncryptionConfig;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::status::{ApiError, ApiResult};

/// One etcd call's deadline; a hung etcd becomes a 504/500, never a hung request.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach etcd (the `--etcd-*` flags).
#[derive(Debug, Clone, Default)]
pub struct EtcdConfig {
    pub servers: Vec<String>,
    pub cafile: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
}

/// A stored object with its etcd metadata.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: String,
    /// The object with `metadata.resourceVersion` set from `mod_revision`.
    pub object: Value,
    pub mod_revision: i64,
    /// The value before encryption, to detect no-op writes.
    pub raw: Vec<u8>,
}

pub struct Store {
    pub prefix: String,
    config: EtcdConfig,
    client: Mutex<Option<Client>>,
    /// `--encryption-provider-config`: encrypt on write, decrypt on read.
    encryption: Option<EncryptionConfig>,
}

fn etcd_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("etcd: {e}"))
}

async fn timed<T, E: std::fmt::Display>(f: impl Future<Output = Result<T, E>>) -> ApiResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r.map_err(etcd_err),
        Err(_) => Err(ApiError::new(504, "Timeout", "etcd did not answer in time")),
    }
}

impl Store {
    pub fn new(prefix: &str, config: EtcdConfig, encryption: Option<EncryptionConfig>) -> Store {
        Store {
            prefix: prefix.trim_end_matches('/').to_string(),
            config,
            client: Mutex::new(None),
            encryption,
        }
    }

    async fn client(&self) -> ApiResult<Client> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let mut opts =
            etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_secs(3));
        if let Some(ca) = &self.config.cafile {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| etcd_err(format!("{}: {e}", p.display())))
            };
            let mut tls = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            if let (Some(c), Some(k)) = (&self.config.certfile, &self.config.keyfile) {
                tls = tls.identity(etcd_client::Identity::from_pem(read(c)?, read(k)?));
            }
            opts = opts.with_tls(tls);
        }
        let client = timed(Client::connect(self.config.servers.clone(), Some(opts))).await?;
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Whether etcd answers a read now (for `/readyz`).
    pub async fn healthy(&self) -> bool {
        let wait = Duration::from_secs(3);
        let Ok(Ok(mut c)) = tokio::time::timeout(wait, self.client()).await else {
            return false;
        };
        let probe = c.get("health", Some(GetOptions::new().with_count_only()));
        matches!(tokio::time::timeout(wait, probe).await, Ok(Ok(_)))
    }

    /// The encoded value of an object, and the bytes to put (encrypted when configured).
    fn seal(&self, key: &str, object: &Value) -> ApiResult<(Vec<u8>, Vec<u8>)> {
        let mut plain = object.clone();
        if let Some(meta) = plain.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        let kind = object["kind"].as_str().unwrap_or_default();
        let encoded = kubeboot::codec::encode(&plain).map_err(|e| {
            ApiError::bad_request(format!("{kind} {key} cannot be handled as a {kind}: {e}"))
        })?;
        let plain = if super::crd::stored_as_json(object) {
            let mut json =
                serde_json::to_vec(&plain).map_err(|e| ApiError::internal(e.to_string()))?;
            json.push(b'\n');
            json
        } else {
            encoded
        };
        let stored = match &self.encryption {
            Some(enc) => enc
                .encrypt(&resource_name(object), key, &plain)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            None => plain.clone(),
        };
        Ok((plain, stored))
    }

    /// The object in a stored value.
    fn open(&self, key: &str, value: &[u8], mod_revision: i64) -> ApiResult<Stored> {
        let plain = match &self.encryption {
            Some(enc) => enc
                .decrypt(key, value)
                .map_err(|e| ApiError::internal(e.to_string()))?,
            None => value.to_vec(),
        };
        let decoded =
            kubeboot::codec::decode(key, &plain).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut object = decoded.object;
        set_resource_version(&mut object, mod_revision);
        Ok(Stored {
            key: key.to_string(),
            object,
            mod_revision,
            raw: plain,
        })
    }

    pub async fn get(&self, key: &str) -> ApiResult<Option<Stored>> {
        let mut c = self.client().await?;
        let resp = timed(c.get(key, None)).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(self.open(key, kv.value(), kv.mod_revision())?)),
            None => Ok(None),
        }
    }

    /// Every object under `prefix` (keys ≥ `start` when given) at `revision` (0 = now),
    /// and the revision read.
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
    ) -> ApiResult<(Vec<Stored>, i64)> {
        let mut c = self.client().await?;
        let end = prefix_end(prefix);
        let from = start.unwrap_or(prefix);
        let opts = GetOptions::new().with_range(end).with_revision(revision);
        let resp = timed(c.get(from, Some(opts))).await.map_err(|e| {
            if e.message.contains("compacted") {
                ApiError::new(410, "Expired", "The provided continue parameter is too old")
            } else {
                e
            }
        })?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            out.push(self.open(&key, kv.value(), kv.mod_revision())?);
        }
        Ok((out, if revision > 0 { revision } else { rev }))
    }

    /// Creates `key` if absent: `Ok(None)` when it already exists.
    pub async fn create(&self, key: &str, object: &Value) -> ApiResult<Option<Stored>> {
        let (plain, value) = self.seal(key, object)?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        self.commit(key, txn, plain).await
    }

    /// Replaces `current` with `object` if its mod revision has not moved: `Ok(None)`
    /// otherwise. A write that would store the same bytes is skipped, as the real server
    /// skips no-op updates (the resourceVersion stays).
    pub async fn update(&self, current: &Stored, object: &Value) -> ApiResult<Option<Stored>> {
        let key = current.key.as_str();
        let (plain, value) = self.seal(key, object)?;
        if plain == current.raw {
            return Ok(Some(current.clone()));
        }
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key,
                CompareOp::Equal,
                current.mod_revision,
            )])
            .and_then([TxnOp::put(key, value, None)]);
        self.commit(key, txn, plain).await
    }

    /// Runs a guarded put; the stored object is answered as decoded from the value
    /// written, so responses carry exactly what reads will (e.g. `resources: {}`).
    async fn commit(&self, key: &str, txn: Txn, plain: Vec<u8>) -> ApiResult<Option<Stored>> {
        let mut c = self.client().await?;
        let resp = timed(c.txn(txn)).await?;
        if !resp.succeeded() {
            return Ok(None);
        }
        let rev = resp.header().map_or(0, |h| h.revision());
        let decoded =
            kubeboot::codec::decode(key, &plain).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut object = decoded.object;
        set_resource_version(&mut object, rev);
        Ok(Some(Stored {
            key: key.to_string(),
            object,
            mod_revision: rev,
            raw: plain,
        }))
    }

    /// Deletes `key` if its mod revision is still `expected`; the delete's revision.
    pub async fn delete(&self, key: &str, expected: i64) -> ApiResult<Option<i64>> {
        let mut c = self.client().await?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(key, None)]);
        let resp = timed(c.txn(txn)).await?;
        Ok(resp
            .succeeded()
            .then(|| resp.header().map_or(0, |h| h.revision())))
    }

    /// Deletes everything under `prefix` (what the namespace controller does).
    pub async fn delete_prefix(&self, prefix: &str) -> ApiResult<()> {
        let mut c = self.client().await?;
        let opts = etcd_client::DeleteOptions::new().with_prefix();
        timed(c.delete(prefix, Some(opts))).await?;
        Ok(())
    }

    /// An etcd watch on `prefix` from `start_revision`, with previous values.
    pub async fn watch(&self, prefix: &str, start_revision: i64) -> ApiResult<WatchStream> {
        let mut c = self.client().await?;
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(start_revision);
        timed(c.watch(prefix, Some(opts))).await
    }

    /// Decodes a watched value.
    pub fn decode(&self, key: &[u8], value: &[u8], mod_revision: i64) -> ApiResult<Value> {
        let key = String::from_utf8_lossy(key);
        Ok(self.open(&key, value, mod_revision)?.object)
    }
}

/// `secrets` or `deployments.apps`: how an EncryptionConfiguration names the resource.
fn resource_name(object: &Value) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let group = kubeboot::registry::group_of(api_version);
    let plural = super::discovery::RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .map_or_else(
            || format!("{}s", kind.to_lowercase()),
            |r| r.plural.to_string(),
        );
    if group.is_empty() {
        plural
    } else {
        format!("{plural}.{group}")
    }
}

pub fn set_resource_version(object: &mut Value, rev: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rev.to_string()));
    }
}

/// The etcd range end of a prefix (the prefix with its last byte incremented).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
