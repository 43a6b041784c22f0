//! What `etcdctl snapshot status` reports, computed the same way, so an operator can set
//! `kubeboot inspect` beside it and see the same hash, revision, key count and size
//! (etcd's `etcdutl/snapshot` `Status`, read through the code search; nothing copied):
//!
//! - the hash is CRC-32C over, for every top-level bucket in key order, its name and then
//!   each of its entries' key and value (a nested bucket's value counts as empty, as
//!   bbolt's `ForEach` passes nil for it);
//! - total keys counts every entry of every bucket, so every revision of every key and
//!   etcd's bookkeeping (`meta`, `members`, `lease`, ...), not the live keys;
//! - the revision is the main revision of the last entry of bucket `key`, tombstones
//!   included;
//! - the size is the bbolt high-water mark (`pgid × page size`), not the file's length;
//! - the version is `meta/storageVersion`, written by etcd 3.6 and later.

use super::Problem;
use super::bbolt::Db;

/// `etcdctl snapshot status`'s fields, under its JSON names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Walks every bucket of `db` once.
pub fn status(db: &Db<'_>) -> Result<Status, Problem> {
    let mut hash = 0u32;
    let mut total_key = 0u64;
    let mut revision = 0i64;
    let mut version = None;
    for top in db.cursor(db.root())? {
        let top = top?;
        let Some(bucket) = db.bucket(db.root(), top.key)? else {
            return Err(Problem::Corrupt(format!(
                "top-level entry `{}` is not a bucket",
                String::from_utf8_lossy(top.key)
            )));
        };
        hash = crc32c::crc32c_append(hash, top.key);
        let is_key = top.key == b"key";
        let is_meta = top.key == b"meta";
        for entry in db.cursor(bucket)? {
            let entry = entry?;
            hash = crc32c::crc32c_append(hash, entry.key);
            if !entry.is_bucket() {
                hash = crc32c::crc32c_append(hash, entry.value);
            }
            if is_key && let Some(main) = entry.key.first_chunk::<8>() {
                revision = i64::from_be_bytes(*main);
            }
            if is_meta && entry.key == b"storageVersion" {
                version = Some(String::from_utf8_lossy(entry.value).into_owned());
            }
            total_key += 1;
        }
    }
    let meta = db.meta();
    Ok(Status {
        hash,
        revision,
        total_key,
        total_size: meta.pgid.saturating_mul(u64::from(meta.page_size)),
        version,
    })
}
